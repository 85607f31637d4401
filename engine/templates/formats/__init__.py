"""The built-in chat formats as data files, as Ollama keeps its ``template/`` folder.

One Jinja file per format, its text exactly as a manifest records it (no final
newline), and ``index.json`` mapping a GGUF ``general.architecture`` to the
format's name and file. Read by :mod:`engine.templates.known`; shipped as
package data (``pyproject.toml``), which ``tests/test_wheel.py`` checks in a
built wheel.
"""
