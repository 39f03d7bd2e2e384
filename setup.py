from setuptools import find_packages, setup

setup(
    name='pyforge',
    version='0.1.0',
    description='Event listeners for forge apps over RabbitMQ',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=['tests', 'tests.*']),
    python_requires='>=3.10',
    install_requires=[
        'kombu>=5.7,<6',
        'Paste>=3.7',
        'PasteDeploy>=3.0',
        'PasteScript>=3.6',
        'pymongo>=4.6,<5',
        # PasteScript imports pkg_resources, which setuptools 82 removed.
        'setuptools<82',
    ],
    extras_require={
        'test': ['pynose>=1.5', 'mongomock>=4.1'],
    },
    entry_points={
        'paste.global_paster_command': [
            'project = pyforge.command.project:ProjectCommand',
            'publish = pyforge.command.publish:PublishCommand',
            'reactor = pyforge.command.reactor:ReactorCommand',
            'reactor_dead = pyforge.command.reactor_dead:DeadCommand',
            'reactor_prune = pyforge.command.reactor_prune:PruneCommand',
            'reactor_setup = pyforge.command.reactor_setup:SetupCommand',
            'reactor_status = pyforge.command.reactor_status:StatusCommand',
        ],
        # pynose loads plugins of its current API from this group.
        'nose.plugins.0.10': [
            'pyforge = pyforge.lib.nose_plugin:PyforgePlugin',
        ],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Framework :: Paste',
    ],
)
