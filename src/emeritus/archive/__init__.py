"""The preservation archive: OCFL 1.1 objects, fixity, replicas, repair, restore, BagIt export.

Format and invariants: docs/design/archive-format.md.
"""
