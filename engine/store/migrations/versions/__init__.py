"""The session schema's revisions, oldest first; sessions are never downgraded."""
