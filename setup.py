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
    license_files=["LICENSE"],
    python_requires=">=3.11",
    # The checkout keeps its top-level folders; daaas/ holds links to them, so the wheel has
    # one namespace (daaas.portal, daaas.catalogue, ...) and nothing generic at the top level.
    packages=find_packages(include=["daaas", "daaas.*"]),
    # Every file the code reads at run time; tests/integration/test_packaging.py installs the
    # wheel in a fresh venv and runs it, so a file missing here fails there.
    package_data={
        "daaas.portal": ["templates/**/*", "static/**/*", "migrations/script.py.mako",
                         "hpc/job_templates/*.yaml"],
        "daaas.catalogue": ["environments/*.yaml", "icons/*", "*.md"],
        "daaas.contextualisation": ["templates/*", "agent/*", "*.md"],
        "daaas.cvmfs": ["*.yaml", "templates/*", "keys/*"],
        "daaas.vm_images": ["*.md", "elements/**/*"],
    },
    exclude_package_data={"": ["__pycache__/*", "*.pyc"]},
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
        "python-xlib>=0.33",
        "psutil>=6",
        "cryptography>=43",
        "authlib>=1.6",
        "joserfc>=1.0",
        "prometheus_client>=0.20",
        "python-json-logger>=3.1",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "playwright>=1.40",
            "openapi-spec-validator>=0.7",
            "jsonschema>=4",
            "ruff>=0.5",
            "mypy>=1.10",
            "types-PyYAML",
            "types-requests",
            "types-python-xlib",
            "types-psutil",
            "pillow>=10",
            "cryptography",
            "webdavclient3>=3.14",
            "schemathesis>=4,<5",
            "aiosmtpd>=1.4",
        ],
    },
    entry_points={"console_scripts": ["daaas=daaas.portal.cli:main"]},
)
