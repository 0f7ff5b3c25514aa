"""What tensorflow_model_server does, row by row, each row with the source it was read from.

The conformance tests (tests/serving/test_conformance.py) hold facemath's stand-in server to this table; nothing here is
copied from the stand-in. Sources are files of github.com/tensorflow/serving at commit SERVING_COMMIT
(`serving:PATH:LINE`), of github.com/tensorflow/tensorflow (`tensorflow:PATH, FUNCTION`), or documentation pages.
A message fragment is a literal piece of the string the cited line builds.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVING_COMMIT = "9d981c5c2708d23c5407c7c1e30309e6f9798874"
SERVING_URL = f"https://github.com/tensorflow/serving/blob/{SERVING_COMMIT}/tensorflow_serving/"


@dataclass(frozen=True)
class Row:
    id: str
    call: str
    condition: str
    code: str  # grpc.StatusCode name; OK for a call that must succeed
    fragment: str  # a literal piece of the message ("" when the source builds none worth matching)
    source: str


ROWS: tuple[Row, ...] = (
    # --- GetModelStatus --------------------------------------------------------------------------------------
    Row(
        "status-no-spec",
        "GetModelStatus",
        "request without model_spec",
        "INVALID_ARGUMENT",
        "Missing ModelSpec",
        "serving:model_servers/get_model_status_impl.cc:70",
    ),
    Row(
        "status-unknown-model",
        "GetModelStatus",
        "model name not served",
        "NOT_FOUND",
        "Could not find any versions of model ",
        "serving:model_servers/get_model_status_impl.cc:99-100",
    ),
    Row(
        "status-unknown-version",
        "GetModelStatus",
        "model served, version not",
        "NOT_FOUND",
        "Could not find version ",
        "serving:model_servers/get_model_status_impl.cc:89",
    ),
    # --- GetModelMetadata ------------------------------------------------------------------------------------
    Row(
        "metadata-no-spec",
        "GetModelMetadata",
        "request without model_spec",
        "INVALID_ARGUMENT",
        "Missing ModelSpec",
        "serving:servables/tensorflow/get_model_metadata_impl.cc:76-79",
    ),
    Row(
        "metadata-no-field",
        "GetModelMetadata",
        "no metadata_field, unknown model (fields are checked before the model is looked up)",
        "INVALID_ARGUMENT",
        "GetModelMetadataRequest must specify at least one metadata_field",
        "serving:servables/tensorflow/get_model_metadata_impl.cc:35-38 (called first, line 89)",
    ),
    Row(
        "metadata-bad-field",
        "GetModelMetadata",
        "metadata_field other than signature_def, unknown model",
        "INVALID_ARGUMENT",
        " is not supported",
        "serving:servables/tensorflow/get_model_metadata_impl.cc:41-43",
    ),
    Row(
        "metadata-unknown-model",
        "GetModelMetadata",
        "metadata_field signature_def, model not served",
        "NOT_FOUND",
        "Servable not found for request: Latest(",
        "serving:core/basic_manager.cc:139, serving:core/manager.h:150-155 (ServableRequest::DebugString)",
    ),
    # --- Predict ---------------------------------------------------------------------------------------------
    Row(
        "predict-no-spec",
        "Predict",
        "request without model_spec",
        "INVALID_ARGUMENT",
        "Missing ModelSpec",
        "serving:servables/tensorflow/predict_impl.cc:40",
    ),
    Row(
        "predict-empty-name",
        "Predict",
        "model_spec.name empty",
        "INVALID_ARGUMENT",
        "ModelSpec has no name specified.",
        "serving:model_servers/server_core.cc:844",
    ),
    Row(
        "predict-unknown-model",
        "Predict",
        "model not served, no version",
        "NOT_FOUND",
        "Servable not found for request: Latest(",
        "serving:core/basic_manager.cc:139, serving:core/manager.h:153",
    ),
    Row(
        "predict-unknown-version",
        "Predict",
        "version not served",
        "NOT_FOUND",
        "Servable not found for request: Specific(",
        "serving:core/basic_manager.cc:139, serving:core/manager.h:151",
    ),
    Row(
        "predict-unknown-label",
        "Predict",
        "version_label not assigned",
        "INVALID_ARGUMENT",
        "Unrecognized servable version label: ",
        "serving:model_servers/server_core.cc:891",
    ),
    Row(
        "predict-unknown-signature",
        "Predict",
        "signature_name not in the SavedModel",
        "FAILED_PRECONDITION",
        'Serving signature key "',
        "serving:servables/tensorflow/predict_util.cc:92-93",
    ),
    Row(
        "predict-missing-input",
        "Predict",
        "fewer inputs than the signature (no defaults)",
        "INVALID_ARGUMENT",
        "input size does not match signature: 1!=2",
        "serving:servables/tensorflow/predict_util.cc:53-70",
    ),
    Row(
        "predict-missing-input-names",
        "Predict",
        "fewer inputs than the signature: the missing aliases, joined with ','",
        "INVALID_ARGUMENT",
        "Missing but required: {cotangent}.",
        "serving:servables/tensorflow/predict_util.cc:69-70",
    ),
    Row(
        "predict-unknown-input",
        "Predict",
        "an input alias the signature does not have",
        "INVALID_ARGUMENT",
        "input tensor alias not found in signature: ",
        "tensorflow:tensorflow/cc/saved_model/util.cc, GetInputValues "
        "(called at serving:servables/tensorflow/predict_util.cc:129)",
    ),
    Row(
        "predict-wrong-dtype",
        "Predict",
        "float64 sent to a float32 input",
        "INVALID_ARGUMENT",
        "to be float but double is provided",
        "tensorflow:tensorflow/core/common_runtime/executor feed check, via Session::Run "
        "(serving:servables/tensorflow/predict_util.cc:108-110)",
    ),
    Row(
        "predict-unknown-output",
        "Predict",
        "output_filter names an alias the signature does not have",
        "INVALID_ARGUMENT",
        "output tensor alias not found in signature: ",
        "serving:servables/tensorflow/predict_util.cc:136-142",
    ),
    Row(
        "predict-duplicate-output",
        "Predict",
        "output_filter names an alias twice",
        "INVALID_ARGUMENT",
        "duplicate output tensor alias: ",
        "serving:servables/tensorflow/predict_util.cc:144-148",
    ),
    Row(
        "predict-wrong-shape",
        "Predict",
        "z of width 5 for the generator: no shape check against the signature, the first MatMul fails",
        "INVALID_ARGUMENT",
        "Matrix size-incompatible",
        "serving:servables/tensorflow/predict_util.cc:119-130 (no shape check before Session::Run, 108-110); "
        "tensorflow:tensorflow/core/kernels/matmul_op_impl.h, MatMulOp::Compute",
    ),
    Row(
        "predict-undeclared-shape-runs",
        "Predict",
        "a shape the signature does not declare but the graph can run (metadata index of shape [2, 1]): runs",
        "OK",
        "",
        "serving:servables/tensorflow/predict_util.cc:119-130 and 108-110: inputs go to Session::Run unchecked",
    ),
    Row(
        "predict-other-batch-size",
        "Predict",
        "a batch size the signature does not name (shape [-1, ...]): runs",
        "OK",
        "",
        "serving:servables/tensorflow/predict_util.cc:119-130 (no shape check)",
    ),
    Row(
        "predict-label-resolves-to-number",
        "Predict",
        "a version_label: the answer's model_spec carries the numeric version",
        "OK",
        "",
        "serving:servables/tensorflow/predict_util.cc:97-98 (MakeModelSpec with the servable's version)",
    ),
    # --- Classify / Regress / MultiInference on predict signatures --------------------------------------------
    Row(
        "classify-predict-signature",
        "Classify",
        "serving_default of a predict export (input z, output images)",
        "INVALID_ARGUMENT",
        "No classification inputs found in SignatureDef",
        "serving:servables/tensorflow/classifier.cc:194-198 (method check off by default: "
        "serving:model_servers/server.h:102, servables/tensorflow/util.cc:104)",
    ),
    Row(
        "classify-two-inputs",
        "Classify",
        "a two-input predict signature (vjp)",
        "INVALID_ARGUMENT",
        "Expected one input Tensor.",
        "serving:servables/tensorflow/classifier.cc:185-186",
    ),
    Row(
        "regress-predict-signature",
        "Regress",
        "serving_default of a predict export",
        "INVALID_ARGUMENT",
        "No regression inputs found in SignatureDef",
        "serving:servables/tensorflow/regressor.cc:186-190",
    ),
    Row(
        "multi-inference-predict-signature",
        "MultiInference",
        "a classify task on a predict signature",
        "INVALID_ARGUMENT",
        "No classification inputs found in SignatureDef",
        "serving:servables/tensorflow/multi_inference.cc:74-76, classifier.cc:194-198",
    ),
    Row(
        "multi-inference-empty-name",
        "MultiInference",
        "a task whose model_spec has no name",
        "INVALID_ARGUMENT",
        "Found ModelSpec with an empty model name.",
        "serving:servables/tensorflow/multi_inference.cc:43-45",
    ),
    # --- HandleReloadConfigRequest ---------------------------------------------------------------------------
    Row(
        "reload-empty-config",
        "HandleReloadConfigRequest",
        "config not set (an empty ModelServerConfig); the models loaded keep serving",
        "INVALID_ARGUMENT",
        "ServerModelConfig type not supported by HandleReloadConfigRequest",
        "serving:model_servers/model_service_impl.cc:51-69",
    ),
    Row(
        "reload-duplicate-name",
        "HandleReloadConfigRequest",
        "a model listed twice; nothing is unloaded",
        "INVALID_ARGUMENT",
        " multiple times in config list",
        "serving:model_servers/server_core.cc:120-126, checked at 504-505 before loading (524)",
    ),
    Row(
        "reload-relative-base-path",
        "HandleReloadConfigRequest",
        "a relative base_path (no --model_config_list_root_dir); nothing is unloaded",
        "INVALID_ARGUMENT",
        " to have an absolute path or URI; got base_path()=",
        "serving:model_servers/server_core.cc:140-148",
    ),
    Row(
        "reload-unknown-platform",
        "HandleReloadConfigRequest",
        "model_platform pytorch; nothing is unloaded",
        "INVALID_ARGUMENT",
        " requests unsupported platform pytorch",
        "serving:model_servers/server_core.cc:660-666 (CreateStoragePathRoutes, line 374, before routes change)",
    ),
    Row(
        "reload-no-platform",
        "HandleReloadConfigRequest",
        "model_platform empty and no model_type",
        "INVALID_ARGUMENT",
        "Illegal setting neither ModelServerConfig::model_type (deprecated) nor ModelServerConfig::model_platform",
        "serving:model_servers/server_core.cc:99-104",
    ),
    Row(
        "reload-corrupt-savedmodel",
        "HandleReloadConfigRequest",
        "a new model whose only version is not a loadable SavedModel",
        "UNKNOWN",
        " model(s) did not become available: {",
        "serving:model_servers/server_core.cc:328-364 (WaitUntilModelsAvailable, for new models, line 440)",
    ),
    Row(
        "reload-replaces-list",
        "HandleReloadConfigRequest",
        "a valid config: the whole model list is replaced (models not listed are unloaded)",
        "OK",
        "",
        "serving:model_servers/server_core.cc:428-436 (ReloadStoragePathSourceConfig tears down unlisted models)",
    ),
    # --- labels ----------------------------------------------------------------------------------------------
    Row(
        "label-unavailable-version",
        "HandleReloadConfigRequest",
        "a label on a version not loaded yet (a new version, or a label move in the same reload that loads it)",
        "FAILED_PRECONDITION",
        "which is not currently available for inference",
        "serving:model_servers/server_core.cc:575-584; labels are set (514) before models load (524); "
        "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/g3doc/serving_config.md#assigning-"
        "labels (lines 188-199)",
    ),
    Row(
        "label-at-startup",
        "start-up",
        "a models.config with labels and no --allow_version_labels_for_unavailable_models: the server exits",
        "FAILED_PRECONDITION",
        "which is not currently available for inference",
        "serving:model_servers/server_core.cc:287 (start-up is ReloadConfig), 514, 575-584",
    ),
    Row(
        "label-at-startup-with-flag",
        "start-up",
        "the same with --allow_version_labels_for_unavailable_models: starts, label resolves",
        "OK",
        "",
        "serving:model_servers/server_core.cc:559-571; flag at serving:model_servers/main.cc:110",
    ),
    Row(
        "label-move-with-flag-refused",
        "HandleReloadConfigRequest",
        "with the flag: moving an assigned label to a version not loaded yet is still refused",
        "FAILED_PRECONDITION",
        "which is not currently available for inference",
        "serving:model_servers/server_core.cc:562-571 (allowed only when no existing label has another version)",
    ),
    Row(
        "label-move-after-available",
        "HandleReloadConfigRequest",
        "moving a label to a version that is AVAILABLE (second of two reloads)",
        "OK",
        "",
        "serving:model_servers/server_core.cc:575-586; g3doc/serving_config.md:188-195",
    ),
    # --- batching, deadlines, message size -------------------------------------------------------------------
    Row(
        "batching-max-batch-size",
        "Predict",
        "--enable_batching with max_batch_size 128: a request of 129 rows",
        "INVALID_ARGUMENT",
        "is larger than maximum input batch size 128",
        "serving:servables/tensorflow/bundle_factory_util.h:111-113 (input_batch_size_limit = max_batch_size, "
        "also with large-batch splitting); tensorflow:tensorflow/core/kernels/batching_util/"
        "shared_batch_scheduler.h, Queue::ValidateBatchTaskQueueCapacity",
    ),
    Row(
        "batching-at-limit",
        "Predict",
        "--enable_batching with max_batch_size 128: a request of 128 rows runs",
        "OK",
        "",
        "tensorflow:tensorflow/core/kernels/batching_util/shared_batch_scheduler.h, "
        "Queue::ValidateBatchTaskQueueCapacity (task->size() > input_batch_size_limit)",
    ),
    Row(
        "deadline",
        "Predict",
        "the client's deadline passes while the graph runs",
        "DEADLINE_EXCEEDED",
        "",
        "serving:model_servers/prediction_service_impl.cc:44-45 (deadline -> RunOptions.timeout_in_ms)",
    ),
    Row(
        "message-truncated",
        "any",
        "an error message longer than 1024 characters is cut and marked",
        "INVALID_ARGUMENT",
        "...TRUNCATED",
        "serving:model_servers/grpc_status_util.cc:25-30",
    ),
    Row(
        "message-size-client",
        "Predict",
        "an answer over 4 MiB to a Python client with default channel options",
        "RESOURCE_EXHAUSTED",
        "Received message larger than max",
        "https://grpc.github.io/grpc/python/glossary.html#term-channel_arguments (grpc.max_receive_message_length, "
        "default 4 MiB); the server itself sends up to 2 GiB: serving:model_servers/server.cc:397",
    ),
)

# tensorflow_model_server's flags: name -> line of its tensorflow::Flag("name", ...) in
# serving:model_servers/main.cc at SERVING_COMMIT.
MAIN_CC_FLAGS: dict[str, int] = {
    "port": 88,
    "grpc_socket_path": 91,
    "rest_api_port": 95,
    "rest_api_num_threads": 99,
    "rest_api_timeout_in_ms": 102,
    "rest_api_enable_cors_support": 104,
    "enable_batching": 107,
    "allow_version_labels_for_unavailable_models": 110,
    "batching_parameters_file": 114,
    "enable_per_model_batching_parameters": 120,
    "model_config_file": 131,
    "model_config_file_poll_wait_seconds": 138,
    "model_name": 145,
    "model_base_path": 148,
    "num_load_threads": 151,
    "num_unload_threads": 157,
    "max_num_load_retries": 163,
    "load_retry_interval_micros": 168,
    "file_system_poll_wait_seconds": 173,
    "flush_filesystem_caches": 182,
    "tensorflow_session_parallelism": 191,
    "tensorflow_session_config_file": 198,
    "tensorflow_intra_op_parallelism": 205,
    "tensorflow_inter_op_parallelism": 211,
    "use_alts_credentials": 217,
    "ssl_config_file": 220,
    "platform_config_file": 223,
    "per_process_gpu_memory_fraction": 229,
    "saved_model_tags": 235,
    "grpc_channel_arguments": 238,
    "grpc_max_threads": 243,
    "enable_model_warmup": 245,
    "num_request_iterations_for_warmup": 249,
    "version": 253,
    "monitoring_config_file": 255,
    "remove_unused_fields_from_bundle_metagraph": 259,
    "prefer_tflite_model": 263,
    "num_tflite_pools": 271,
    "num_tflite_interpreters_per_pool": 277,
    "enable_signature_method_name_check": 284,
    "xla_cpu_compilation_enabled": 289,
    "xla_gpu_compilation_enabled": 295,
    "enable_profiler": 298,
    "thread_pool_factory_config_file": 300,
    "mixed_precision": 304,
    "skip_initialize_tpu": 306,
    "enable_grpc_healthcheck_service": 308,
    "enable_serialization_as_tensor_content": 312,
}


def row(row_id: str) -> Row:
    return next(r for r in ROWS if r.id == row_id)
