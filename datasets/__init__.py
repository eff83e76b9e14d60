"""The course's data files (README.md: provenance, licence, checksums), installed as the package
``bncourse.datasets`` (pyproject.toml maps this folder there) and read by ``bncourse.data`` through
``importlib.resources``. No code: this file only makes the folder a regular package, which
setuptools' editable install (``make install``) needs to map a folder outside ``bncourse/`` into it
(a folder without one is not importable there: https://github.com/pypa/setuptools/issues/4943).
"""
