"""What a run did, as data, and its renderings: console text, JSON, a self-contained HTML page with plots."""
