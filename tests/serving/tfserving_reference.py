"""What tensorflow_model_server does, row by row, each row with the source it was read from.

The conformance tests (tests/serving/test_conformance.py) hold facemath's stand-in server to this table; nothing here is
copied from the stand-in. Sources are files of github.com/tensorflow/serving at commit SERVING_COMMIT
(`serving:PATH:LINE`); where the line differs at SERVING_TAG, the release the shipped manifests run
(tensorflow/serving:2.19.1), it is given as "(2.19.1: LINE)"; rows without it cite lines that are the same at both. Also
files of github.com/tensorflow/tensorflow (`tensorflow:PATH, FUNCTION`), issues, or documentation pages.
A message fragment is a literal piece of the string the cited line builds.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVING_COMMIT = "9d981c5c2708d23c5407c7c1e30309e6f9798874"
SERVING_TAG = "2.19.1"  # the image serving/docker-compose.yml and serving/kubernetes/deployment.yaml run
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
        "an input alias the signature does not have (zz instead of z): the signature's alias is not in the request",
        "INVALID_ARGUMENT",
        ") not found in request and no default value provided. Inputs expected to be in the request {zz}, "
        "or default input alias set: ",
        "tensorflow:tensorflow/cc/saved_model/util.cc:58-65, GetInputValues (tensorflow/tensorflow 23b4afc; the "
        'older "input tensor alias not found in signature" was removed in tensorflow 45bc2916, Aug 2023), called '
        "at serving:servables/tensorflow/predict_util.cc:129 (2.19.1: 127)",
    ),
    Row(
        "predict-unknown-input-names-feed",
        "Predict",
        "the same: the message names the missing alias and its feed (tensor) name",
        "INVALID_ARGUMENT",
        "Signature input alias: z(feed name: serving_default_z:0)",
        "tensorflow:tensorflow/cc/saved_model/util.cc:60-61 (alias, then the TensorInfo's name)",
    ),
    Row(
        "predict-op-error",
        "Predict",
        "an op fails while the graph runs (vjp with 2 latents and 3 cotangents, no batching): the kernel's own "
        'message, without the Python session\'s "Graph execution error:" header',
        "INVALID_ARGUMENT",
        "The two arguments to a cwise op must have same number of elements",
        "serving:servables/tensorflow/predict_util.cc:109 (2.19.1: 107; Session::Run's C++ Status is returned as it "
        "is), serving:model_servers/grpc_status_util.cc:24-34 (ToGRPCStatus; both)",
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
        "one task whose model_spec has no name: the servable is looked up by the first task's spec first",
        "INVALID_ARGUMENT",
        "ModelSpec has no name specified.",
        "serving:servables/tensorflow/multi_inference_helper.cc:28-33, 42, 52 (GetServableHandle of tasks(0)'s "
        "spec) -> serving:model_servers/server_core.cc:844 (2.19.1: 808)",
    ),
    Row(
        "multi-inference-second-task-empty-name",
        "MultiInference",
        "the first task names the model, the second has no name",
        "INVALID_ARGUMENT",
        "Found ModelSpec with an empty model name.",
        "serving:servables/tensorflow/multi_inference.cc:42-45 (the task loop, after the lookup by tasks(0))",
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
        "a model new to the server with model_platform pytorch; nothing is unloaded",
        "INVALID_ARGUMENT",
        "Model other requests unsupported platform pytorch",
        "serving:model_servers/server_core.cc:655-666 (2.19.1: 620-631; CreateStoragePathRoutes, called at 374 "
        "(2.19.1: 345) before the routes change)",
    ),
    Row(
        "reload-change-platform",
        "HandleReloadConfigRequest",
        "a model the server has (platform tensorflow) listed with model_platform pytorch; nothing is unloaded",
        "INVALID_ARGUMENT",
        "Illegal to change a model's platform. For model generator platform was tensorflow and new platform "
        "requested is pytorch",
        "serving:model_servers/server_core.cc:157-181 (2.19.1: 129-152; ValidateNoModelsChangePlatforms), called "
        "at 509 (2.19.1: 474), before the unknown-platform check of the routes (374 / 345)",
    ),
    Row(
        "reload-missing-base-path",
        "HandleReloadConfigRequest",
        "a new model whose base_path does not exist: no error, the reload waits for the model (the client's "
        "2 s deadline passes), a later reload queues behind it, and it finishes once a version appears",
        "DEADLINE_EXCEEDED",
        "",
        "serving:model_servers/server_core.cc:440 (2.19.1: 411; WaitUntilModelsAvailable for new models) with "
        "servable_state_waiter_timeout = absl::InfiniteDuration() (serving:model_servers/server_core.h:218, both); "
        'serving:sources/storage_path/file_system_storage_path_source.cc:257-262 ("Could not find base path" is '
        "logged, polling goes on); https://github.com/tensorflow/serving/issues/1565, /issues/1447",
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
        "label-refused-config-kept",
        "HandleReloadConfigRequest",
        "a reload refused for its label is still stored as the current config: the next reload's platform check "
        "compares with it (model other: pytorch in the refused config, tensorflow now)",
        "INVALID_ARGUMENT",
        "Illegal to change a model's platform. For model other platform was pytorch",
        "serving:model_servers/server_core.cc:512 (config_ = new_config) before 514 (UpdateModelVersionLabelMap), "
        "2.19.1: 477 before 479; the check at 509 (2.19.1: 474) compares with config_",
    ),
    Row(
        "label-move-in-one-file-strands",
        "HandleReloadConfigRequest",
        "the same config (new version 2 and the label moved onto it) reloaded again, as a model config poll does "
        "every period: refused again, version 2 never loads",
        "FAILED_PRECONDITION",
        "Request to assign label to version 2 of model generator, which is not currently available for inference",
        "serving:model_servers/server.cc:165-180 (2.19.1: 163-178; every poll parses the file and calls "
        "ReloadConfig, changed or not), serving:model_servers/server_core.cc:482-487 (2.19.1: 453-458; the same "
        "config is accepted as a transition), 514 before 524 (2.19.1: 479 before 489)",
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
        "batching-unequal-0th-dim",
        "Predict",
        "--enable_batching: vjp with 2 rows of z and 3 rows of cotangent",
        "INVALID_ARGUMENT",
        "Batching Run() input tensors must have equal 0th-dimension size",
        "serving:batching/batching_util.h:102-106 (ComputeTensorBatchSize, both), called by "
        "serving:batching/batching_session.cc:443, 469-475 (ComputeInputSize, before the task is scheduled)",
    ),
    Row(
        "batching-scalar-input",
        "Predict",
        "--enable_batching: the metadata signature's index sent as a scalar",
        "INVALID_ARGUMENT",
        "Batching Run() input tensors must have at least one dimension",
        "serving:batching/batching_util.h:91-95 (ComputeTensorBatchSize, both)",
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


# tensorflow_serving/config/ssl_config.proto, message SSLConfig (lines 7-16, the same at SERVING_TAG and
# SERVING_COMMIT): field name -> (number, type). tensorflow-serving-api's wheel does not ship this proto
# (tensorflow_serving.config holds only model_server_config and what it imports), so facemath declares it
# (facemath_core/serving/protos.py) and the tests hold the declaration to this table.
SSL_CONFIG_FIELDS: dict[str, tuple[int, str]] = {
    "server_key": (1, "string"),
    "server_cert": (2, "string"),
    "custom_ca": (3, "string"),
    "client_verify": (4, "bool"),
}
