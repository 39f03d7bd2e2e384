"""Projects and mounted apps in the test bus's store."""

from pymongo.errors import DuplicateKeyError

from pyforge.exceptions import ConfigurationError
from pyforge.lib.context import pushed, session
from pyforge.model import AppConfig, Project, Session
from pyforge.model.project import check_name


class ProjectHelpers:
    """Creates projects and app instances in ``self.db``, among the apps
    of ``self.apps``."""

    def create_project(self, shortname, *mounts, name=None,
                       project_id=None):
        """Create a project with apps mounted as ``'APP:MOUNT_POINT'``.

        Returns the :class:`pyforge.model.Project`. Its id, which
        messages give as ``project_id``, is `shortname` unless
        `project_id` is given.
        """
        project = Project.new(shortname, name, project_id)
        configs = [self._new_config(project, spec) for spec in mounts]
        self._insert(project, *configs)
        return self.project(project._id)

    def mount(self, project, spec, options=None):
        """Mount ``'APP:MOUNT_POINT'`` in `project`; return its AppConfig.
        """
        project = self.project(project)
        config = self._new_config(project, spec, options)
        self._insert(config)
        return project.app_config(config.mount_point, db=self.db)

    def project(self, project):
        """Return the Project with this id (or `project` itself)."""
        if isinstance(project, Project):
            return project
        found = Project.get(project, db=self.db)
        if found is None:
            raise ConfigurationError(
                'project %r does not exist on this bus; create it with '
                'bus.create_project()' % (project,))
        return found

    def app(self, project, mount_point):
        """Return the app instance mounted at `mount_point`."""
        project = self.project(project)
        config = project.app_config(mount_point, db=self.db)
        if config is None:
            raise ConfigurationError(
                'project %r has no app mounted at %r; mount one with '
                'bus.mount()' % (project._id, mount_point))
        return self._app_class(config.tool_name)(project, config)

    def app_options(self, project, mount_point):
        """Return the options of the app at `mount_point`, as stored."""
        return self.app(project, mount_point).config.options

    def _new_config(self, project, spec, options=None):
        app_name, separator, mount_point = spec.partition(':')
        if not separator:
            raise ConfigurationError(
                'mount %r is invalid; write APP:MOUNT_POINT, e.g. '
                'hello_forge:hello' % spec)
        self._app_class(app_name)
        check_name('mount point', mount_point)
        return AppConfig.new(project._id, mount_point, app_name, options)

    def _app_class(self, app_name):
        if app_name not in self.apps:
            raise ConfigurationError(
                'app %r does not run on this bus; its apps are %s. Install '
                'it, or pass its class in extra_apps'
                % (app_name, ', '.join(sorted(self.apps)) or 'none'))
        return self.apps[app_name]

    def _insert(self, *documents):
        with pushed(session, Session(self.db)):
            for document in documents:
                document.insert()
            try:
                session.flush()
            except DuplicateKeyError as exc:
                raise ConfigurationError(
                    'a project or mount point of that name exists on this '
                    'bus (%s). A bus shared by a test run keeps them from '
                    'test to test: choose other names, or run with '
                    '--pyforge-fresh-store=test' % exc) from None
