"""Reports: the post-deployment report (with the team's notes and decisions, and the
continued-access recommendation) and the migration guide with the side-by-side comparison of a
model and its successor behind it (prompt sets, measures), each as Markdown, one self-contained
HTML page with embedded charts, and JSON. Charts and the page shell are shared.
Specs: docs/design/report.md, docs/design/migration-guide.md."""

from emeritus.report.access_score import recommend
from emeritus.report.charts import CURRENCY, PALETTE, Chart, bar_chart, interval_chart, money_labels
from emeritus.report.comparison import CompareConfig, check_models, compare
from emeritus.report.decisions import (
    DECISIONS,
    add_note,
    current_decisions,
    decide,
    decisions,
    notes,
)
from emeritus.report.guide import (
    GUIDE_FORMAT,
    GuideResult,
    build_guide,
    migration_guide,
    publish_guide,
)
from emeritus.report.guide_pages import guide_charts, render_html, render_markdown
from emeritus.report.html import environment, render_page
from emeritus.report.markdown import quote, table
from emeritus.report.measures import HABITS, METRICS, REFUSAL_LEXICON
from emeritus.report.postdeployment import ReportResult, build_report, publish_report
from emeritus.report.promptset import Adjustment, PromptItem, PromptSet, load_prompt_set
from emeritus.report.report_pages import render_report_html, render_report_markdown, report_charts
from emeritus.report.retirement_checklist import ChecklistItem, checklist
from emeritus.report.tables import DecisionRecord, NoteRecord

__all__ = [
    "CURRENCY",
    "DECISIONS",
    "GUIDE_FORMAT",
    "HABITS",
    "METRICS",
    "PALETTE",
    "REFUSAL_LEXICON",
    "Adjustment",
    "Chart",
    "ChecklistItem",
    "CompareConfig",
    "DecisionRecord",
    "GuideResult",
    "NoteRecord",
    "PromptItem",
    "PromptSet",
    "ReportResult",
    "add_note",
    "bar_chart",
    "build_guide",
    "build_report",
    "check_models",
    "checklist",
    "compare",
    "current_decisions",
    "decide",
    "decisions",
    "environment",
    "guide_charts",
    "interval_chart",
    "load_prompt_set",
    "migration_guide",
    "money_labels",
    "notes",
    "publish_guide",
    "publish_report",
    "quote",
    "recommend",
    "render_html",
    "render_markdown",
    "render_page",
    "render_report_html",
    "render_report_markdown",
    "report_charts",
    "table",
]
