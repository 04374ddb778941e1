"""Streamlit helpers shared by the dashboard's pages: the spec being edited and its URL (``state``), the
generic spec form (``form``), cached calls into ``archs`` (``compute``), figures and tables (``charts``),
and number formatting (``fmt``). Logic about networks stays in ``archs``; this package only lays it out."""
