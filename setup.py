"""Package layout only (metadata lives in pyproject.toml).

``pyproject.toml``'s ``packages.find`` cannot add a package that lives in another directory, so
the top-level ``migrations/`` (kept there for developers who run ``alembic`` by hand) is mapped
here into the wheel as ``loyalty._migrations``; ``loyalty.migrate`` finds it in either place.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["loyalty", "loyalty.*"]), "loyalty._migrations"],
    package_dir={"loyalty._migrations": "migrations"},
    package_data={
        "loyalty._migrations": ["script.py.mako", "versions/*.py"],
        "loyalty.admin_console": ["static/*.*", "static/pages/*.js"],
    },
)
