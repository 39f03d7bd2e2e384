"""Documents of the forge kept in MongoDB, and the session that writes
them."""

from pyforge.lib.context import session
from pyforge.model import records
from pyforge.model.document import Document
from pyforge.model.project import AppConfig, Project
from pyforge.model.writes import Session

__all__ = ['AppConfig', 'Document', 'Project', 'Session', 'ensure_indexes',
           'session']


def ensure_indexes(db):
    """Create the indexes pyforge's queries rely on; safe to repeat."""
    db[Project.collection_name].create_index('shortname', unique=True)
    db[AppConfig.collection_name].create_index(
        [('project_id', 1), ('mount_point', 1)], unique=True)
    db[AppConfig.collection_name].create_index(
        [('project_id', 1), ('tool_name', 1)])
    records.ensure_indexes(db)
