"""Ship the repository root's migrations/ and model_repo/ inside the aixaudit package.

pyproject.toml holds everything else; only a list of packages computed by find_packages can
name these two directories beside the discovered ones (aixaudit.resources finds them).
"""

from setuptools import find_packages, setup

SHIPPED_DIRS = {"aixaudit.migrations": "migrations", "aixaudit.model_repo": "model_repo"}

setup(
    packages=[*find_packages(include=["aixaudit*", "workers*", "api*"]), *SHIPPED_DIRS],
    package_dir=SHIPPED_DIRS,
    package_data={
        "aixaudit": ["span_queries/*.scm", "context/queries/*.scm"],
        "api": ["static/*"],
        "aixaudit.migrations": ["*.mako", "versions/*.py"],
        "aixaudit.model_repo": ["**/*", "**/.gitkeep"],  # an ensemble's empty version dir
    },
)
