"""Themes shipped with llamadeck, loaded as Textual themes by tui/themes.py.

A package only so that the wheel carries the TOML files.
"""
