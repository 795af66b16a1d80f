# The scripts are run by tests/test_examples.py (torch example only where torch is installed);
# collected as doctest modules they would only be imported, which fails without torch.
collect_ignore_glob = ["*.py"]
