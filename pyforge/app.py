"""The base class of forge apps whose methods listen on the message bus."""


class Application:
    """An app (tracker, wiki, ...) as mounted at one point of a project.

    Subclasses mark listener methods with :func:`pyforge.lib.decorators.audit`
    and :func:`~pyforge.lib.decorators.react` and register the class under
    the ``pyforge`` entry point group. The worker creates one instance per
    mounted app configuration when a message needs it.
    """

    def __init__(self, project, config):
        #: The :class:`pyforge.model.Project` the app is mounted in.
        self.project = project
        #: The :class:`pyforge.model.AppConfig` of this mount point.
        self.config = config

    @property
    def mount_point(self):
        """Path segment of this instance in its project, e.g. ``wiki``."""
        return self.config.mount_point

    def __repr__(self):
        return '<%s %s/%s>' % (
            type(self).__name__, self.project.shortname, self.mount_point)
