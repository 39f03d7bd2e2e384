"""wiki: an app that reacts to what happens in its project.

Mount it twice in a project and both instances record each comment made
in hello_forge; the project's event count is kept once per message.
"""

from pyforge.app import Application
from pyforge.lib.context import c
from pyforge.lib.decorators import react
from pyforge.model import session

#: Collection of per-project event counts kept by the class reactor.
ACTIVITY = 'wiki_activity'


class WikiApp(Application):
    """Keeps a list of recent changes per wiki instance."""

    @react('hello_forge.commented')
    def on_comment(self, routing_key, data):
        """Add the comment to this wiki's recent changes."""
        self.config.update({'$push': {'options.recent_changes': {
            'routing_key': routing_key,
            'text': data.get('text'),
            'from': data.get('mount_point'),
        }}})

    @react('#')
    @classmethod
    def count_events(cls, routing_key, data):
        """Count every event of the project, once per message."""
        session.update_one(
            ACTIVITY, {'_id': c.project._id},
            {'$inc': {'events': 1}, '$set': {'last': routing_key}},
            upsert=True)
