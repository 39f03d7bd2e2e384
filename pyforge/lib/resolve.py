"""Resolution of a message to its project and app instances.

An audit message names one app instance by ``mount_point``; a react
message reaches every instance of the listener's app in its project.
"""

import copy

from pyforge.exceptions import MessageError
from pyforge.lib.routing import AUDIT
from pyforge.model.project import AppConfig, Project
from pyforge.model.records import storable_text


def _is_utf8(text):
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


class Resolver:
    """Finds the calls a listener makes for a message.

    Between :meth:`remember` and :meth:`forget` it keeps the projects and
    app configurations it read, so a batch of messages for one project
    reads them once. A write to their collections empties that memory.
    """

    def __init__(self, db):
        self.db = db
        self._projects = None
        self._app_configs = None

    def remember(self):
        """Keep what is read until :meth:`forget`."""
        self._projects = {}
        self._app_configs = {}

    def forget(self):
        self._projects = None
        self._app_configs = None

    def written(self, collections):
        """Drop what was read from `collections`, which were written."""
        if self._projects is not None and collections & {
                Project.collection_name, AppConfig.collection_name}:
            self.remember()

    def resolve(self, envelope, listener):
        """Return the project and ``(target, app, data)`` of each call."""
        project_id = envelope.project_id
        if project_id is None:
            raise MessageError(
                'the body has no project_id; add the id of the project '
                'the message is about', reason='missing-project-id')
        if not isinstance(project_id, str) or not _is_utf8(project_id):
            raise MessageError(
                'project_id %s is not a string of valid UTF-8'
                % storable_text(project_id), reason='invalid-project-id')
        project = self._project(project_id)
        if project is None:
            raise MessageError(
                'project %r does not exist; create it with paster project '
                'or fix project_id' % project_id, reason='unknown-project')

        app_class = listener.app_class
        if listener.exchange == AUDIT:
            app = self._audited_app(project, envelope, listener)
            target = app_class if listener.is_classmethod else app
            return project, [(target, app, envelope.data)]
        if listener.is_classmethod:
            return project, [(app_class, None, envelope.data)]

        configs = [config for config in self._configs(project)
                   if config.tool_name == listener.app_name]
        calls = []
        for index, config in enumerate(configs):
            app = app_class(project, config)
            # Each instance gets its own copy, so what one changes in the
            # data is not seen by the next.
            data = envelope.data if index == 0 else copy.deepcopy(
                envelope.data)
            calls.append((app, app, data))
        return project, calls

    def _audited_app(self, project, envelope, listener):
        """Return the app instance an audit message is for.

        A classmethod auditor gets None when the message names no mount
        point of its app; an instance auditor cannot run without one.
        """
        mount_point = envelope.mount_point
        strict = not listener.is_classmethod
        if mount_point is None:
            if strict:
                raise MessageError(
                    'the body has no mount_point; audit messages for %s '
                    'must name the app instance' % listener.label,
                    reason='missing-mount-point')
            return None
        config = None
        if isinstance(mount_point, str):
            config = next((config for config in self._configs(project)
                           if config.mount_point == mount_point), None)
        if config is None:
            if strict:
                raise MessageError(
                    'project %r has no app mounted at %r; mount one with '
                    'paster project mount, or fix mount_point'
                    % (project._id, mount_point),
                    reason='unknown-mount-point')
            return None
        if config.tool_name != listener.app_name:
            if strict:
                raise MessageError(
                    'mount point %r of project %r runs the app %r, not '
                    '%r; send the message to a mount point of %r'
                    % (mount_point, project._id, config.tool_name,
                       listener.app_name, listener.app_name),
                    reason='wrong-app')
            return None
        return listener.app_class(project, config)

    def _project(self, project_id):
        if self._projects is None:
            return Project.get(project_id, db=self.db)
        if project_id not in self._projects:
            self._projects[project_id] = Project.get(project_id, db=self.db)
        return self._projects[project_id]

    def _configs(self, project):
        """Return every app configuration of `project`."""
        if self._app_configs is None:
            return project.app_configs(db=self.db)
        if project._id not in self._app_configs:
            self._app_configs[project._id] = project.app_configs(db=self.db)
        return self._app_configs[project._id]
