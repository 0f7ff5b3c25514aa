"""TF Serving's BatchingParameters, MonitoringConfig and SSLConfig messages, for checking the shipped config files
and for the stand-in server, which reads the same files as tensorflow_model_server.

The tensorflow-serving-api wheel ships the API and model-config protos (tensorflow_serving/apis, and of
tensorflow_serving/config only model_server_config and what it imports) but not these three, so they are declared
here field for field as in tensorflow_serving/servables/tensorflow/session_bundle_config.proto,
tensorflow_serving/config/monitoring_config.proto and tensorflow_serving/config/ssl_config.proto (SSLConfig, lines
7-16 at tag 2.19.1 and at commit 9d981c5: server_key = 1, server_cert = 2, custom_ca = 3 (strings),
client_verify = 4 (bool)). Text-format parsing is strict like TF Serving's ParseProtoTextFile: an unknown field
name is an error.
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
    ssl = file.message_type.add(name="SSLConfig")
    for number, name in enumerate(("server_key", "server_cert", "custom_ca"), 1):
        ssl.field.add(name=name, number=number, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    ssl.field.add(name="client_verify", number=4, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    pool.Add(file)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))  # noqa: E731
    return get("BatchingParameters"), get("MonitoringConfig"), get("SSLConfig")


def parse_batching_parameters(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, _messages()[0]())


def parse_monitoring_config(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, _messages()[1]())


def parse_ssl_config(text: str):
    """An SSLConfig text proto (tensorflow_model_server --ssl_config_file): PEM contents inline, not file names."""
    from google.protobuf import text_format

    return text_format.Parse(text, _messages()[2]())


def format_ssl_config(server_key: str, server_cert: str, custom_ca: str = "", client_verify: bool = False) -> str:
    """The SSLConfig text a server reads: the PEMs as escaped strings (a PEM's newlines must be escaped in text
    format, a hand-written file usually gets this wrong)."""
    from google.protobuf import text_format

    message = _messages()[2](
        server_key=server_key, server_cert=server_cert, custom_ca=custom_ca, client_verify=client_verify
    )
    return text_format.MessageToString(message)
