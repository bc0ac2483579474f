"""Pure data shared by every stage: policy and inventory files, resolved desired state, plans.

Imports only pydantic and the package's `source`; no I/O.
"""
