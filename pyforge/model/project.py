"""Projects and the apps mounted in them."""

import re

from bson import ObjectId

from pyforge.exceptions import ConfigurationError
from pyforge.model.document import Document

#: Shape of project shortnames and mount points: they appear in URLs.
NAME_PATTERN = re.compile(r'\A[a-z0-9][a-z0-9_-]{0,62}\Z')


def check_name(what, value):
    """Return `value` if it is a valid shortname or mount point."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ConfigurationError(
            '%s %r is invalid; use 1 to 63 lowercase letters, digits, '
            "'_' or '-', starting with a letter or digit" % (what, value))
    return value


class Project(Document):
    """A hosted project: ``_id``, ``shortname`` and ``name``."""

    collection_name = 'projects'

    @classmethod
    def new(cls, shortname, name=None, _id=None):
        """Return a new, not yet inserted project.

        Its ``_id`` defaults to the shortname, so that messages can name
        the project readably in ``project_id``.
        """
        check_name('project shortname', shortname)
        if _id is not None and (not isinstance(_id, str) or not _id):
            raise ConfigurationError(
                'project id %r is invalid; use a non-empty string' % (_id,))
        return cls({
            '_id': _id or shortname,
            'shortname': shortname,
            'name': name or shortname,
        })

    @property
    def shortname(self):
        return self.document['shortname']

    @property
    def name(self):
        return self.document.get('name', self.shortname)

    def app_configs(self, tool_name=None, db=None):
        """Return the project's app configurations by mount point."""
        query = {'project_id': self._id}
        if tool_name is not None:
            query['tool_name'] = tool_name
        return AppConfig.find(query, sort=[('mount_point', 1)], db=db)

    def app_config(self, mount_point, db=None):
        """Return the app configuration at `mount_point`, or None."""
        return AppConfig.find_one(
            {'project_id': self._id, 'mount_point': mount_point}, db=db)


class AppConfig(Document):
    """An app mounted in a project: which app, where, with what options."""

    collection_name = 'app_configs'

    @classmethod
    def new(cls, project_id, mount_point, tool_name, options=None):
        """Return a new, not yet inserted app configuration.

        `tool_name` is the app's entry point name in the ``pyforge`` group.
        """
        check_name('mount point', mount_point)
        if options is not None and not isinstance(options, dict):
            raise ConfigurationError(
                'app options must be a dict, not %r' % (options,))
        return cls({
            '_id': str(ObjectId()),
            'project_id': project_id,
            'mount_point': mount_point,
            'tool_name': tool_name,
            'options': dict(options or {}),
        })

    @property
    def project_id(self):
        return self.document['project_id']

    @property
    def mount_point(self):
        return self.document['mount_point']

    @property
    def tool_name(self):
        return self.document['tool_name']

    @property
    def options(self):
        """The app's options, as last read from the database."""
        return self.document.setdefault('options', {})
