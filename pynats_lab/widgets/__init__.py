"""ipywidgets for the lab: StreamViewer, ConsumerReplay, LatencyChart, DedupChart, ServerMonitor, LagChart,
PriorityGroups.

Each is live in JupyterLab and also carries a static table or figure in its output, so a papermill or
nbconvert run shows something meaningful without a widget manager.
"""
from .consumer_replay import ConsumerReplay
from .dedup_chart import DedupChart
from .lag_chart import LagChart
from .latency_chart import LatencyChart
from .priority_groups import PriorityGroups
from .server_monitor import ServerMonitor
from .stream_viewer import StreamViewer

__all__ = ["StreamViewer", "ConsumerReplay", "LatencyChart", "DedupChart", "ServerMonitor", "LagChart", "PriorityGroups"]
