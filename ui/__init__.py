"""Streamlit helpers shared by the dashboard's pages: the network being edited (``draft``), the address bar and
the settings kept across pages (``settings``), the generic spec form (``form``), cached calls into ``archs``
(``compute``), figures and tables (``charts``), and number formatting (``fmt``). Logic about networks stays in
``archs``; this package only lays it out."""
