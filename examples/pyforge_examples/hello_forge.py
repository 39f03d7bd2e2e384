"""hello_forge: an app that keeps comments sent to it.

Send it a comment on the ``audit`` exchange::

    routing key: hello_forge.comment
    body: {"project_id": "demo", "mount_point": "hello", "text": "Hi"}
"""

from pyforge.app import Application
from pyforge.lib.context import c
from pyforge.lib.decorators import audit
from pyforge.lib.publish import publish
from pyforge.model import session

#: Collection of per-project message counts kept by the class auditor.
STATS = 'hello_forge_stats'


class HelloForgeApp(Application):
    """Stores comments on its instance and tells the project about them."""

    @audit('hello_forge.#')
    def auditor(self, routing_key, data):
        """Store a comment on this instance, then announce it."""
        if routing_key != 'hello_forge.comment':
            return
        text = data.get('text')
        if not isinstance(text, str) or not text:
            raise ValueError('hello_forge.comment needs a non-empty "text"')
        self.config.update({'$push': {'options.comments': text}})
        # Sent after the comment is persisted; dropped if this raises.
        publish('react', 'hello_forge.commented', {'text': text})

    @audit('hello_forge.#')
    @classmethod
    def count_messages(cls, routing_key, data):
        """Count the project's hello_forge messages, once per message."""
        session.update_one(
            STATS, {'_id': c.project._id},
            {'$inc': {'messages': 1},
             '$set': {'last_routing_key': routing_key}},
            upsert=True)
