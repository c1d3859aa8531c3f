"""Maps the top-level folders onto the ``doctune`` namespace.

``core/`` installs as ``doctune.core``, ``desktop/`` as ``doctune.desktop`` and
``resources/`` as ``doctune.resources``, so nothing named plain ``core`` lands in
site-packages. Sub-packages are discovered, so adding one needs no edit here.
"""
from setuptools import find_packages, setup

FOLDERS = {"core": "doctune.core", "desktop": "doctune.desktop", "resources": "doctune.resources"}


def mapped_packages() -> list[str]:
    names = []
    for folder, package in FOLDERS.items():
        names.append(package)
        names += [f"{package}.{sub}" for sub in find_packages(where=folder)]
    return names


setup(
    packages=mapped_packages(),
    package_dir={package: folder for folder, package in FOLDERS.items()},
    package_data={"doctune.resources": ["**/*"], "doctune.desktop": ["**/*.qss", "**/*.svg", "**/*.png"]},
    include_package_data=True,
)
