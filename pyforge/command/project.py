"""``paster project``: create projects and mount apps in them."""

import json
import sys

from pymongo.errors import DuplicateKeyError

from pyforge.command.base import Command, print_table
from pyforge.exceptions import ConfigurationError
from pyforge.lib.context import pushed, session
from pyforge.lib.plugins import find_apps
from pyforge.model import AppConfig, Project, Session


class ProjectCommand(Command):
    """Create, list and mount apps in projects."""

    summary = 'Create projects and mount apps in them'
    usage = ('CONFIG_FILE create SHORTNAME [--name NAME] [--id ID] '
             '[--mount APP:MOUNT_POINT]...\n'
             '       CONFIG_FILE mount SHORTNAME APP:MOUNT_POINT '
             '[--option KEY=VALUE]...\n'
             '       CONFIG_FILE list\n'
             '       CONFIG_FILE show SHORTNAME')
    description = """\
    "create" adds a project; its id, which messages give as project_id,
    is the shortname unless --id says otherwise. "mount" mounts an
    installed app (its entry point name in the "pyforge" group) at a
    mount point of a project, which audit messages name as mount_point.
    "list" prints every project and its mounted apps; "show" prints one
    project with the options of each app as JSON.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option('--name', help='display name of the new project '
                      '(default: the shortname)')
    parser.add_option('--id', dest='project_id', help='id of the new '
                      'project (default: the shortname)')
    parser.add_option(
        '--mount', action='append', default=[], metavar='APP:MOUNT_POINT',
        help='mount an app in the new project; repeat for several')
    parser.add_option(
        '--option', action='append', default=[], metavar='KEY=VALUE',
        help='an option of the apps this command mounts; repeat for '
             'several')
    parser.add_option(
        '--exist-ok', action='store_true', help='with "create": succeed '
        'when the project exists, and mount only the missing apps')

    def run_command(self, args):
        if not args:
            self.usage_error('give an action: create, mount, list or show')
        action, rest = args[0], args[1:]
        actions = {'create': (self.create, 1), 'mount': (self.mount, 2),
                   'list': (self.list, 0), 'show': (self.show, 1)}
        if action not in actions:
            self.usage_error('unknown action %r; use %s'
                             % (action, ', '.join(sorted(actions))))
        method, arity = actions[action]
        if len(rest) != arity:
            self.usage_error('"%s" takes %d argument(s), not %d'
                             % (action, arity, len(rest)))
        with pushed(session, Session(self.environment.db)):
            return method(*rest)

    def create(self, shortname):
        project = Project.new(shortname, self.options.name,
                              self.options.project_id)
        mounts = [_parse_mount(spec) for spec in self.options.mount]
        find_apps(sorted({app for app, _ in mounts}))
        existing = Project.find_one({'shortname': shortname})
        if existing is not None:
            if not self.options.exist_ok:
                raise ConfigurationError(
                    'project %r exists; choose another shortname, or pass '
                    '--exist-ok' % shortname)
            project = existing
        else:
            project.insert()
        for app_name, mount_point in mounts:
            self._mount(project, app_name, mount_point,
                        skip_existing=self.options.exist_ok)
        _flush()
        print('project %s (id %s): %s' % (
            project.shortname, project._id, _describe_apps(project)))
        return 0

    def mount(self, shortname, spec):
        project = _find_project(shortname)
        app_name, mount_point = _parse_mount(spec)
        find_apps([app_name])
        self._mount(project, app_name, mount_point, skip_existing=False)
        _flush()
        print('mounted %s at %s/%s' % (app_name, shortname, mount_point))
        return 0

    def list(self):
        rows = [('ID', 'SHORTNAME', 'NAME', 'APPS')]
        for project in Project.find(sort=[('shortname', 1)]):
            rows.append((str(project._id), project.shortname, project.name,
                         _describe_apps(project)))
        if len(rows) == 1:
            print('no projects; create one with "paster project CONFIG '
                  'create SHORTNAME"', file=sys.stderr)
            return 0
        print_table(rows)
        return 0

    def show(self, shortname):
        project = _find_project(shortname)
        shown = dict(project.document)
        shown['apps'] = [config.document for config in project.app_configs()]
        print(json.dumps(shown, indent=2, sort_keys=True, default=str))
        return 0

    def _mount(self, project, app_name, mount_point, skip_existing):
        existing = project.app_config(mount_point)
        if existing is not None:
            if skip_existing and existing.tool_name == app_name:
                return
            raise ConfigurationError(
                'project %r already has %r mounted at %r; choose another '
                'mount point' % (project.shortname, existing.tool_name,
                                 mount_point))
        options = dict(_parse_option(text) for text in self.options.option)
        AppConfig.new(project._id, mount_point, app_name, options).insert()


def _flush():
    try:
        session.flush()
    except DuplicateKeyError as exc:
        raise ConfigurationError(
            'a project or mount point with this name was created meanwhile'
            ' (%s); run the command again' % exc) from None


def _find_project(shortname):
    project = Project.find_one({'shortname': shortname})
    if project is None:
        raise ConfigurationError(
            'project %r does not exist; create it with "paster project '
            'CONFIG create %s"' % (shortname, shortname))
    return project


def _describe_apps(project):
    configs = project.app_configs()
    return ', '.join('%s=%s' % (config.mount_point, config.tool_name)
                     for config in configs) or 'no apps'


def _parse_mount(spec):
    app_name, sep, mount_point = spec.partition(':')
    if not sep or not app_name or not mount_point:
        raise ConfigurationError(
            'mount %r is invalid; write APP:MOUNT_POINT, e.g. '
            'hello_forge:hello' % spec)
    return app_name, mount_point


def _parse_option(text):
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise ConfigurationError(
            'option %r is invalid; write KEY=VALUE' % text)
    return key, value
