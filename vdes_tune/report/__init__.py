"""The reports a person reads: an evaluation's (`study`: the answer first, figures, the paper's tables) and a
search's (`search`: history, importance, how sure the choice is), as Markdown and self-contained HTML
(`page`), their figures (`figures`), and a real browser's check of a page (`render`)."""
