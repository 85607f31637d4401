"""Another machine's server behind the engine's facade: ``connect`` gives a ``RemoteEngine``.

``wire`` speaks HTTP (standard library), ``shapes`` reads the server's JSON
into the engine's types, ``backend`` answers the facade's methods with them,
``streams`` reads the replies, ``probe`` asks a server which API it speaks.
"""

from engine.remote.backend import RemoteEngine
from engine.remote.probe import connect

__all__ = ["RemoteEngine", "connect"]
