from setuptools import find_packages, setup

setup(
    name='pyforge-examples',
    version='0.1.0',
    description='Example apps listening on the pyforge message bus',
    packages=find_packages(),
    python_requires='>=3.10',
    install_requires=['pyforge'],
    entry_points={
        # Apps are found through this group, like any third-party app.
        'pyforge': [
            'hello_forge = pyforge_examples.hello_forge:HelloForgeApp',
            'wiki = pyforge_examples.wiki:WikiApp',
        ],
    },
)
