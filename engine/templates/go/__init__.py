"""Ollama's Go chat templates in pure Python, rendered byte for byte as Go's ``text/template`` and Ollama do.

An Ollama Modelfile ``TEMPLATE`` is a Go ``text/template`` that Ollama runs over the
conversation (``template/template.go``). One module per job, each after its Go source:

* :mod:`.values`: the Go values a template sees (slices, maps, structs, nil) and their truth;
* :mod:`.fmt`: printing them as ``fmt`` and ``encoding/json`` do;
* :mod:`.nodes`, :mod:`.lex`, :mod:`.parse`: the parse tree, lexer and parser (``text/template/parse``);
* :mod:`.funcs` and :mod:`.exec`: the built-in functions and the executor (``exec.go``, ``funcs.go``);
* :mod:`.ollama`: the data Ollama's ``Execute`` passes (messages, tools) as its ``template*`` types;
* :mod:`.template`: :class:`~engine.templates.go.template.GoTemplate`, Ollama's ``Template``
  (parse once, ``Vars``, ``Execute`` with its legacy per-turn path).
"""
