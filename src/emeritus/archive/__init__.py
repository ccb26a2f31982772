"""The preservation archive: OCFL 1.1 objects, fixity, replicas, repair, restore, BagIt export.

Format and invariants: docs/design/archive-format.md.
"""

from emeritus.archive.bag import export_bag
from emeritus.archive.check import Problem
from emeritus.archive.checkpoints import (
    ARCHIVE_OWN_OBJECTS,
    CHECKPOINTS_OBJECT,
    Anchor,
    AnchorReport,
    Newest,
)
from emeritus.archive.fixity import ObjectStatus, VerifyReport, audit, ndsa_level, status, verify
from emeritus.archive.ocfl import Inventory, object_id, object_root
from emeritus.archive.repair import RepairReport, repair_copies
from emeritus.archive.replication import Replication, replicate
from emeritus.archive.service import Archive, PreserveResult, parse_subset
from emeritus.archive.storage import Storage, open_storage

__all__ = [
    "ARCHIVE_OWN_OBJECTS",
    "CHECKPOINTS_OBJECT",
    "Anchor",
    "AnchorReport",
    "Archive",
    "Inventory",
    "Newest",
    "ObjectStatus",
    "PreserveResult",
    "Problem",
    "RepairReport",
    "Replication",
    "Storage",
    "VerifyReport",
    "audit",
    "export_bag",
    "ndsa_level",
    "object_id",
    "object_root",
    "open_storage",
    "parse_subset",
    "repair_copies",
    "replicate",
    "status",
    "verify",
]
