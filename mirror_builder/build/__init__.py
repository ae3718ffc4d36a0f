"""Build one package version in the sandbox and check what comes out."""
