"""Small helpers every stage uses (files, hashes, the tool's own version, version labels).

Private: nothing here is public API; it sits below every stage and imports none of them.
"""
