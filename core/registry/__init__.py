"""The private container registry: which images retention keeps, and the settings of its daily job."""
