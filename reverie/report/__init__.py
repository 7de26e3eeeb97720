"""Reports: what the nights did, on one self-contained HTML page a person can look at.

    from reverie.report import night_page, study_page, write_page
    write_page(night_page(store, embedder), "report.html")   # `reverie report`
    write_page(study_page(study), "nights.html")             # `bench/nights.py --report`

Modules: `svg` (hand-written charts), `html` (the page and its inline styles), `nights` (reading
the store), `dream_map` (the 2-D map of the dreams), `page` (the nights report), `study` (the
many-nights study). The page needs nothing at view time: no script, no CDN, no web font.
"""

from reverie.report.page import default_path, night_page, write_page
from reverie.report.study import study_page

__all__ = ["default_path", "night_page", "study_page", "write_page"]
