"""Packaging for daaas, the Data-Analysis-as-a-Service portal."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="daaas",
    version="0.1.0",
    description="Data-Analysis-as-a-Service portal for research facilities",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(
        include=["portal*", "catalogue*", "contextualisation*", "vm_images*", "cvmfs*"]
    ),
    include_package_data=True,
    package_data={
        "portal": ["templates/**/*", "static/**/*", "migrations/*", "migrations/**/*",
                   "hpc/job_templates/*.yaml"],
        "catalogue": ["environments/*.yaml", "icons/*", "*.md"],
        "contextualisation": ["templates/*", "agent/*", "*.md"],
        "cvmfs": ["templates/*", "keys/*"],
        "vm_images": ["*", "**/*"],
    },
    install_requires=[
        "openstacksdk>=3",
        "flask>=3",
        "jinja2>=3.1",
        "python-keystoneclient>=5",
        "keystoneauth1>=5",
        "requests>=2.31",
        "sqlalchemy>=2.0",
        "alembic>=1.13",
        "pydantic>=2.6",
        "pyyaml>=6",
        "click>=8.1",
        "waitress>=3",
        "psycopg[binary]>=3.1",
        "websockify>=0.11",
        "WsgiDAV>=4.3",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "playwright>=1.40",
            "openapi-spec-validator>=0.7",
            "jsonschema>=4",
            "ruff>=0.5",
            "mypy>=1.10",
            "types-PyYAML",
            "types-requests",
            "pillow>=10",
            "cryptography",
            "webdavclient3>=3.14",
        ],
    },
    entry_points={"console_scripts": ["daaas=portal.cli:main"]},
)
