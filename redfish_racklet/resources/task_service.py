"""TaskService: every firmware update (or slot activation) is a Task, kept in the store.

- ``/redfish/v1/TaskService/Tasks/N``: the task (TaskState, TaskStatus, PercentComplete,
  Messages from the TaskEvent and Update registries, ``Oem.Racklet.Reason`` in words when
  it failed). Finished tasks are kept up to ``store_updates.TASKS_KEPT`` (the oldest go first).
- ``/redfish/v1/TaskService/TaskMonitors/N``: what the 202 Accepted of an update points
  at. While the task runs: 202 with ``Location`` (itself) and ``Retry-After``, the Task
  as body; once it has ended: 200 and the Task.

A task whose agent was stopped mid-way is failed by the agent at its next start
("ServiceShuttingDown", then TaskAborted), so no task stays Running for ever.
"""

from __future__ import annotations

import re
import time

from flask_smorest import Blueprint

from ..agent.delivery import iso
from ..privileges import declare
from ..store_updates import RUNNING_TASK_STATES
from ..web import RedfishView, collection, render
from .common import not_found, odata_type, store

blp = Blueprint("task_service", __name__, description="Tasks of long operations (firmware updates)")

SERVICE = "/redfish/v1/TaskService"
TASKS = f"{SERVICE}/Tasks"
MONITORS = f"{SERVICE}/TaskMonitors"
TASK_ID = re.compile(r"[1-9][0-9]{0,17}")
RETRY_AFTER = "1"


def task_uri(tid: int) -> str:
    return f"{TASKS}/{tid}"


def monitor_uri(tid: int) -> str:
    return f"{MONITORS}/{tid}"


def task_doc(task: dict) -> dict:
    doc = {
        "@odata.id": task_uri(task["id"]),
        "@odata.type": odata_type("Task"),
        "Id": str(task["id"]),
        "Name": task["name"],
        "TaskState": task["state"],
        "TaskStatus": task["status"],
        "PercentComplete": task["percent"],
        "StartTime": iso(task["started"]),
        "TaskMonitor": monitor_uri(task["id"]),
        "Messages": task["messages"],
        "HidePayload": True,   # the request carried a bundle, not JSON worth echoing
    }
    if task["ended"] is not None:
        doc["EndTime"] = iso(task["ended"])
    reason = task["params"].get("reason")
    if reason:
        doc["Oem"] = {"Racklet": {"@odata.type": "#Racklet.v1_0_0.Task", "Reason": reason}}
    return doc


def find_task(task_id: str) -> dict:
    task = store().task(int(task_id)) if TASK_ID.fullmatch(task_id) else None
    if task is None:
        raise not_found("Task", task_id)
    return task


def accepted(tid: int):
    """The 202 Accepted of an operation that became task ``tid``."""
    return render(task_doc(store().task(tid)), 202,
                  {"Location": monitor_uri(tid), "Retry-After": RETRY_AFTER})


@blp.route(SERVICE)
class TaskService(RedfishView):
    entity = "TaskService"
    privileges = declare(entity, "GET")  # DateTime: not cacheable

    def get(self):
        return {
            "@odata.id": SERVICE,
            "@odata.type": odata_type("TaskService"),
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": True,
            "DateTime": iso(time.time()),
            "CompletedTaskOverWritePolicy": "Oldest",
            "LifeCycleEventOnTaskStateChange": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "Tasks": {"@odata.id": TASKS},
        }


@blp.route(TASKS)
class Tasks(RedfishView):
    entity = "TaskCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return collection("TaskCollection", "Task Collection", TASKS,
                          [task_uri(t["id"]) for t in store().tasks()])


@blp.route(f"{TASKS}/<task_id>")
class Task(RedfishView):
    entity = "Task"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, task_id):
        return task_doc(find_task(task_id))


@blp.route(f"{MONITORS}/<task_id>")
class TaskMonitor(RedfishView):
    entity = "Task"   # a monitor is a view of its task: the task's privileges
    privileges = declare(entity, "GET")

    def get(self, task_id):
        task = find_task(task_id)
        if task["state"] in RUNNING_TASK_STATES:
            return render(task_doc(task), 202, {"Location": monitor_uri(task["id"]), "Retry-After": RETRY_AFTER})
        return task_doc(task)
