"""Another machine's server behind the engine's facade: ``connect`` gives a ``RemoteEngine``.

``wire`` speaks HTTP (standard library), ``shapes`` reads the server's JSON
into the engine's types, ``backend`` answers the facade's methods with them.
"""

from engine.remote.backend import RemoteEngine, connect

__all__ = ["RemoteEngine", "connect"]
