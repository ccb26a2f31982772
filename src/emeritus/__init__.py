"""emeritus: retire language models the careful way.

Announce, preserve, interview, report, keep reachable, let the model write, watch.
The packages follow the layer table in docs/design/architecture.md; each re-exports its
public names.
"""

__version__ = "0.1.0"
