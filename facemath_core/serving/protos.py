"""TF Serving's BatchingParameters and MonitoringConfig messages, for checking the shipped config files.

The tensorflow-serving-api wheel ships the API and model-config protos but not these two, so they are declared
here field for field as in tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
tensorflow_serving/config/monitoring_config.proto.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _messages():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="facemath_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    F = descriptor_pb2.FieldDescriptorProto

    def message_field(message, name: str, number: int, type_name: str) -> None:
        message.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=type_name)

    batching = file.message_type.add(name="BatchingParameters")
    for number, name in enumerate(
        ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"), 1
    ):
        message_field(batching, name, number, ".google.protobuf.Int64Value")
    message_field(batching, "thread_pool_name", 5, ".google.protobuf.StringValue")
    batching.field.add(name="allowed_batch_sizes", number=6, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    monitoring = file.message_type.add(name="MonitoringConfig")
    message_field(monitoring, "prometheus_config", 1, ".tensorflow.serving.PrometheusConfig")
    pool.Add(file)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))  # noqa: E731
    return get("BatchingParameters"), get("MonitoringConfig")


def parse_batching_parameters(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, _messages()[0]())


def parse_monitoring_config(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, _messages()[1]())
