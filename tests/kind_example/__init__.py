"""A small job kind, written as docs/adding-a-job-kind.md says: one workflow module, one
activity module, one declaration (in the test that runs it)."""
