"""Parses PipelineJob bodies strictly with kfp-pipeline-spec's protobuf types.

stdin: JSON object {case name: PipelineJob body}; stdout: JSON {case name: [problems]}."""
import json
import sys

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as ps


def problems(job):
    out = []
    d = job["pipelineSpec"]
    try:
        spec = json_format.ParseDict(d, ps.PipelineSpec(), ignore_unknown_fields=False)
        json_format.ParseDict(d["deploymentSpec"], ps.PipelineDeploymentConfig(), ignore_unknown_fields=False)
    except json_format.ParseError as e:
        return ["parse: %s" % e]
    executors = d["deploymentSpec"]["executors"]
    for name, task in spec.root.dag.tasks.items():
        if task.component_ref.name not in spec.components:
            out.append("task %s: unknown component %s" % (name, task.component_ref.name))
        for dep in task.dependent_tasks:
            if dep not in spec.root.dag.tasks:
                out.append("task %s: unknown dependency %s" % (name, dep))
        for key, art in task.inputs.artifacts.items():
            producer = art.task_output_artifact.producer_task
            outputs = spec.components[spec.root.dag.tasks[producer].component_ref.name].output_definitions.artifacts
            if art.task_output_artifact.output_artifact_key not in outputs:
                out.append("task %s input %s: producer %s has no such output" % (name, key, producer))
    for name, comp in spec.components.items():
        if comp.executor_label not in executors:
            out.append("component %s: executor %s missing" % (name, comp.executor_label))
    return out


jobs = json.load(sys.stdin)
json.dump({name: problems(job) for name, job in jobs.items()}, sys.stdout)
