"""The one table of JetStream API errors, with nats-server's codes, err_codes and descriptions (errors.json).

Every handler raises or returns an `ApiError` made here, so a client sees the same `code`, `err_code` and
`description` from this server as from nats-server. Only the entries this server can produce are listed.
"""
from __future__ import annotations

# constant name (as in nats-server's errors.json) -> (HTTP-like code, err_code, description template)
_TABLE: dict[str, tuple[int, int, str]] = {
    'JSAccountResourcesExceededErr': (400, 10002, 'resource limits exceeded for account'),
    'JSBadRequestErr': (400, 10003, 'bad request'),
    'JSClusterRequiredErr': (503, 10010, 'JetStream clustering support required'),
    'JSConsumerCreateErrF': (500, 10012, '{err}'),
    'JSConsumerNameExistErr': (400, 10013, 'consumer name already in use'),
    'JSConsumerNotFoundErr': (404, 10014, 'consumer not found'),
    'JSConsumerDurableNameNotInSubjectErr': (400, 10016, 'consumer expected to be durable but no durable name set in subject'),
    'JSConsumerDurableNameNotMatchSubjectErr': (400, 10017, 'consumer name in subject does not match durable name in request'),
    'JSConsumerDurableNameNotSetErr': (400, 10018, 'consumer expected to be durable but a durable name was not set'),
    'JSConsumerEphemeralWithDurableInSubjectErr': (400, 10019, 'consumer expected to be ephemeral but detected a durable name set in subject'),
    'JSConsumerEphemeralWithDurableNameErr': (400, 10020, 'consumer expected to be ephemeral but a durable name was set in request'),
    'JSInsufficientResourcesErr': (503, 10023, 'insufficient resources'),
    'JSInvalidJSONErr': (400, 10025, 'invalid JSON: {err}'),
    'JSMaximumConsumersLimitErr': (400, 10026, 'maximum consumers limit reached'),
    'JSMaximumStreamsLimitErr': (400, 10027, 'maximum number of streams reached'),
    'JSMemoryResourcesExceededErr': (500, 10028, 'insufficient memory resources available'),
    'JSMirrorWithSourcesErr': (400, 10031, 'stream mirrors can not also contain other sources'),
    'JSMirrorWithSubjectsErr': (400, 10034, 'stream mirrors can not contain subjects'),
    'JSNoMessageFoundErr': (404, 10037, 'no message found'),
    'JSNotEmptyRequestErr': (400, 10038, 'expected an empty request payload'),
    'JSNotEnabledForAccountErr': (503, 10039, 'JetStream not enabled for account'),
    'JSSequenceNotFoundErrF': (400, 10043, 'sequence {seq} not found'),
    'JSStorageResourcesExceededErr': (500, 10047, 'insufficient storage resources available'),
    'JSStreamCreateErrF': (500, 10049, '{err}'),
    'JSStreamDeleteErrF': (500, 10050, '{err}'),
    'JSStreamGeneralErrorF': (500, 10051, '{err}'),
    'JSStreamInvalidConfigF': (500, 10052, '{err}'),
    'JSStreamLimitsErrF': (500, 10053, '{err}'),
    'JSStreamMessageExceedsMaximumErr': (400, 10054, 'message size exceeds maximum allowed'),
    'JSStreamMaxBytesRequired': (400, 10113, 'account requires a stream config to have max bytes set'),
    'JSStreamMaxStreamBytesExceeded': (400, 10122, 'stream max bytes exceeds account limit max stream bytes'),
    'JSStreamMirrorNotUpdatableErr': (400, 10055, 'stream mirror configuration can not be updated'),
    'JSStreamMismatchErr': (400, 10056, 'stream name in subject does not match request'),
    'JSStreamMsgDeleteFailedF': (500, 10057, '{err}'),
    'JSStreamNameExistErr': (400, 10058, 'stream name already in use with a different configuration'),
    'JSStreamNotFoundErr': (404, 10059, 'stream not found'),
    'JSSnapshotDeliverSubjectInvalidErr': (400, 10015, 'deliver subject not valid'),
    'JSStreamRestoreErrF': (500, 10062, 'restore failed: {err}'),
    'JSStreamSnapshotErrF': (500, 10064, 'snapshot failed: {err}'),
    'JSTempStorageFailedErr': (500, 10072, 'JetStream unable to open temp storage for restore'),
    'JSStreamNameExistRestoreFailedErr': (400, 10130, 'stream name already in use, cannot restore'),
    'JSConsumerInvalidResetErr': (400, 10204, 'invalid reset: {err}'),
    'JSStreamNotMatchErr': (400, 10060, 'expected stream does not match'),
    'JSStreamReplicasNotUpdatableErr': (400, 10061, 'Replicas configuration can not be updated'),
    'JSStreamSubjectOverlapErr': (400, 10065, 'subjects overlap with an existing stream'),
    'JSStreamUpdateErrF': (500, 10069, '{err}'),
    'JSStreamWrongLastMsgIDErrF': (400, 10070, 'wrong last msg ID: {id}'),
    'JSStreamWrongLastSequenceErrF': (400, 10071, 'wrong last sequence: {seq}'),
    'JSStreamReplicasNotSupportedErr': (500, 10074, 'replicas > 1 not supported in non-clustered mode'),
    'JSNotEnabledErr': (503, 10076, 'JetStream not enabled'),
    'JSStreamStoreFailedF': (503, 10077, '{err}'),
    'JSConsumerConfigRequiredErr': (400, 10078, 'consumer config required'),
    'JSConsumerDeliverToWildcardsErr': (400, 10079, 'consumer deliver subject has wildcards'),
    'JSConsumerPushMaxWaitingErr': (400, 10080, 'consumer in push mode can not set max waiting'),
    'JSConsumerDeliverCycleErr': (400, 10081, 'consumer deliver subject forms a cycle'),
    'JSConsumerMaxPendingAckPolicyRequiredErr': (400, 10082, 'consumer requires ack policy for max ack pending'),
    'JSConsumerSmallHeartbeatErr': (400, 10083, 'consumer idle heartbeat needs to be >= 100ms'),
    'JSConsumerPullRequiresAckErr': (400, 10084, 'consumer in pull mode requires explicit ack policy on workqueue stream'),
    'JSConsumerPullNotDurableErr': (400, 10085, 'consumer in pull mode requires a durable name'),
    'JSConsumerPullWithRateLimitErr': (400, 10086, 'consumer in pull mode can not have rate limit set'),
    'JSConsumerMaxWaitingNegativeErr': (400, 10087, 'consumer max waiting needs to be positive'),
    'JSConsumerHBRequiresPushErr': (400, 10088, 'consumer idle heartbeat requires a push based consumer'),
    'JSConsumerFCRequiresPushErr': (400, 10089, 'consumer flow control requires a push based consumer'),
    'JSConsumerDirectRequiresPushErr': (400, 10090, 'consumer direct requires a push based consumer'),
    'JSConsumerDirectRequiresEphemeralErr': (400, 10091, 'consumer direct requires an ephemeral consumer'),
    'JSConsumerFilterNotSubsetErr': (400, 10093, 'consumer filter subject is not a valid subset of the interest subjects'),
    'JSConsumerInvalidPolicyErrF': (400, 10094, '{err}'),
    'JSConsumerInvalidSamplingErrF': (400, 10095, 'failed to parse consumer sampling configuration: {err}'),
    'JSStreamInvalidErr': (500, 10096, 'stream not valid'),
    'JSStreamHeaderExceedsMaximumErr': (400, 10097, 'header size exceeds maximum allowed of 64k'),
    'JSConsumerWQRequiresExplicitAckErr': (400, 10098, 'workqueue stream requires explicit ack'),
    'JSConsumerWQMultipleUnfilteredErr': (400, 10099, 'multiple non-filtered consumers not allowed on workqueue stream'),
    'JSConsumerWQConsumerNotUniqueErr': (400, 10100, 'filtered consumer not unique on workqueue stream'),
    'JSConsumerWQConsumerNotDeliverAllErr': (400, 10101, 'consumer must be deliver all on workqueue stream'),
    'JSConsumerNameTooLongErrF': (400, 10102, 'consumer name is too long, maximum allowed is {max}'),
    'JSConsumerBadDurableNameErr': (400, 10103, "durable name can not contain '.', '*', '>'"),
    'JSConsumerStoreFailedErrF': (500, 10104, 'error creating store for consumer: {err}'),
    'JSConsumerExistingActiveErr': (400, 10105, 'consumer already exists and is still active'),
    'JSConsumerReplacementWithDifferentNameErr': (400, 10106, 'consumer replacement durable config not the same'),
    'JSConsumerDescriptionTooLongErrF': (400, 10107, 'consumer description is too long, maximum allowed is {max}'),
    'JSConsumerWithFlowControlNeedsHeartbeats': (400, 10108, 'consumer with flow control also needs heartbeats'),
    'JSStreamSealedErr': (400, 10109, 'invalid operation on sealed stream'),
    'JSStreamPurgeFailedF': (500, 10110, '{err}'),
    'JSStreamRollupFailedF': (500, 10111, '{err}'),
    'JSConsumerInvalidDeliverSubject': (400, 10112, 'invalid push consumer deliver subject'),
    'JSConsumerMaxRequestBatchNegativeErr': (400, 10114, 'consumer max request batch needs to be > 0'),
    'JSConsumerMaxRequestExpiresTooSmall': (400, 10115, 'consumer max request expires needs to be >= 1ms'),
    'JSConsumerMaxDeliverBackoffErr': (400, 10116, 'max deliver is required to be > length of backoff values'),
    'JSStreamInfoMaxSubjectsErr': (500, 10117, 'subject details would exceed maximum allowed'),
    'JSConsumerMaxPendingAckExcessErrF': (400, 10121, 'consumer max ack pending exceeds system limit of {limit}'),
    'JSConsumerMaxRequestBatchExceededF': (400, 10125, 'consumer max request batch exceeds server limit of {limit}'),
    'JSConsumerReplicasExceedsStream': (400, 10126, 'consumer config replica count exceeds parent stream'),
    'JSConsumerNameContainsPathSeparatorsErr': (400, 10127, 'Consumer name can not contain path separators'),
    'JSStreamNameContainsPathSeparatorsErr': (400, 10128, 'Stream name can not contain path separators'),
    'JSConsumerCreateFilterSubjectMismatchErr': (400, 10131, 'Consumer create request did not match filtered subject from create subject'),
    'JSConsumerCreateDurableAndNameMismatch': (400, 10132, 'Consumer Durable and Name have to be equal if both are provided'),
    'JSReplicasCountCannotBeNegative': (400, 10133, 'replicas count cannot be negative'),
    'JSConsumerMetadataLengthErrF': (400, 10135, 'consumer metadata exceeds maximum size of {limit}'),
    'JSConsumerDuplicateFilterSubjects': (400, 10136, 'consumer cannot have both FilterSubject and FilterSubjects specified'),
    'JSConsumerMultipleFiltersNotAllowed': (400, 10137, 'consumer with multiple subject filters cannot use subject based API'),
    'JSConsumerOverlappingSubjectFilters': (400, 10138, 'consumer subject filters cannot overlap'),
    'JSConsumerEmptyFilter': (400, 10139, 'consumer filter in FilterSubjects cannot be empty'),
    'JSSourceDuplicateDetected': (400, 10140, 'duplicate source configuration detected'),
    'JSSourceInvalidStreamName': (400, 10141, 'sourced stream name is invalid'),
    'JSMirrorInvalidStreamName': (400, 10142, 'mirrored stream name is invalid'),
    'JSMirrorWithFirstSeqErr': (400, 10143, 'stream mirrors can not have first sequence configured'),
    'JSConsumerAlreadyExists': (400, 10148, 'consumer already exists'),
    'JSConsumerDoesNotExist': (400, 10149, 'consumer does not exist'),
    'JSConsumerInactiveThresholdExcess': (400, 10153, 'consumer inactive threshold exceeds system limit of {limit}'),
    'JSStreamTransformInvalidSource': (400, 10155, 'stream transform source: {err}'),
    'JSStreamTransformInvalidDestination': (400, 10156, 'stream transform: {err}'),
    'JSPedanticErrF': (400, 10157, 'pedantic mode: {err}'),
    'JSConsumerPriorityPolicyWithoutGroup': (400, 10159, 'Setting PriorityPolicy requires at least one PriorityGroup to be set'),
    'JSConsumerInvalidPriorityGroupErr': (400, 10160, 'Provided priority group does not exist for this consumer'),
    'JSConsumerEmptyGroupName': (400, 10161, 'Group name cannot be an empty string'),
    'JSConsumerInvalidGroupNameErr': (400, 10162, 'Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters'),
    'JSStreamWrongLastSequenceConstantErr': (400, 10164, 'wrong last sequence'),
    'JSMessageTTLInvalidErr': (400, 10165, 'invalid per-message TTL'),
    'JSMessageTTLDisabledErr': (400, 10166, 'per-message TTL is disabled'),
    'JSMessageIncrDisabledErr': (400, 10168, 'message counters is disabled'),
    'JSMessageIncrInvalidErr': (400, 10171, 'message counter increment is invalid'),
    'JSMessageIncrMissingErr': (400, 10169, 'message counter increment is missing'),
    'JSMessageIncrPayloadErr': (400, 10170, 'message counter has payload'),
    'JSMessageCounterBrokenErr': (400, 10172, 'message counter is broken'),
    'JSAtomicPublishDisabledErr': (400, 10174, 'atomic publish is disabled'),
    'JSConsumerPushWithPriorityGroupErr': (400, 10178, 'priority groups can not be used with push consumers'),
    'JSConsumerAckPolicyInvalidErr': (400, 10181, 'consumer ack policy invalid'),
    'JSConsumerReplayPolicyInvalidErr': (400, 10182, 'consumer replay policy invalid'),
    'JSConsumerAckWaitNegativeErr': (400, 10183, 'consumer ack wait needs to be positive'),
    'JSConsumerBackOffNegativeErr': (400, 10184, 'consumer backoff needs to be positive'),
    'JSRequiredApiLevelErr': (412, 10185, 'JetStream minimum api level required'),
    'JSMessageSchedulesDisabledErr': (400, 10188, 'message schedules is disabled'),
    'JSStreamExpectedLastSeqPerSubjectInvalid': (400, 10193, 'missing sequence for expected last sequence per subject'),
    'JSStreamOfflineReasonErrF': (500, 10194, 'stream is offline: {err}'),
    'JSConsumerPriorityGroupWithPolicyNone': (400, 10196, 'consumer can not have priority groups when policy is none'),
    'JSConsumerPinnedTTLWithoutPriorityPolicyNone': (400, 10197, 'PinnedTTL cannot be set when PriorityPolicy is none'),
    'JSBatchPublishDisabledErr': (400, 10205, 'batch publish is disabled'),
    'JSStreamExternalApiOverlapErrF': (400, 10021, 'stream external api prefix {prefix} must not overlap with {subject}'),
    'JSStreamExternalDelPrefixOverlapsErrF': (400, 10022, 'stream external delivery prefix {prefix} overlaps with stream subject {subject}'),
    'JSStreamInvalidExternalDeliverySubjErrF': (400, 10024, 'stream external delivery prefix {prefix} must not contain wildcards'),
    'JSMirrorMaxMessageSizeTooBigErr': (400, 10030, 'stream mirror must have max message size >= source'),
    'JSSourceMaxMessageSizeTooBigErr': (400, 10046, 'stream source must have max message size >= target'),
    'JSSourceMultipleFiltersNotAllowed': (400, 10144, 'source with multiple subject transforms cannot also have a single subject filter'),
    'JSSourceInvalidSubjectFilter': (400, 10145, 'source transform source: {err}'),
    'JSSourceInvalidTransformDestination': (400, 10146, 'source transform: {err}'),
    'JSSourceOverlappingSubjectFilters': (400, 10147, 'source filters can not overlap'),
    'JSMirrorMultipleFiltersNotAllowed': (400, 10150, 'mirror with multiple subject transforms cannot also have a single subject filter'),
    'JSMirrorInvalidSubjectFilter': (400, 10151, 'mirror transform source: {err}'),
    'JSMirrorOverlappingSubjectFilters': (400, 10152, 'mirror subject filters can not overlap'),
    'JSMirrorInvalidTransformDestination': (400, 10154, 'mirror transform: {err}'),
    'JSMirrorWithCountersErr': (400, 10173, 'stream mirrors can not also calculate counters'),
    'JSMirrorWithMsgSchedulesErr': (400, 10186, 'stream mirrors can not also schedule messages'),
    'JSSourceWithMsgSchedulesErr': (400, 10187, 'stream source can not also schedule messages'),
    'JSMirrorWithAtomicPublishErr': (400, 10198, 'stream mirrors can not also use atomic publishing'),
    'JSMirrorWithBatchPublishErr': (400, 10209, 'stream mirrors can not also use batch publishing'),
    'JSMirrorDurableConsumerCfgInvalid': (400, 10213, 'stream mirror consumer config is invalid'),
    'JSSourceDurableConsumerCfgInvalid': (400, 10215, 'stream source consumer config is invalid'),
    'JSMirrorConsumerRequiresAckFCErr': (400, 10214, 'stream mirror consumer requires flow control ack policy'),
    'JSSourceDurableConsumerDuplicateDetected': (400, 10216, 'duplicate stream source consumer detected'),
    'JSSourceConsumerRequiresAckFCErr': (400, 10217, 'stream source consumer requires flow control ack policy'),
    'JSConsumerAckFCRequiresPushErr': (400, 10218, 'flow control ack policy requires a push based consumer'),
    'JSConsumerAckFCRequiresFCErr': (400, 10219, 'flow control ack policy requires flow control'),
    'JSConsumerAckFCRequiresMaxAckPendingErr': (400, 10220, 'flow control ack policy requires max ack pending'),
    'JSConsumerAckFCRequiresNoAckWaitErr': (400, 10221, 'flow control ack policy requires unset ack wait'),
    'JSConsumerAckFCRequiresNoMaxDeliverErr': (400, 10222, 'flow control ack policy requires unset max deliver'),
    'JSAtomicPublishMissingSeqErr': (400, 10175, 'atomic publish sequence is missing'),
    'JSAtomicPublishIncompleteBatchErr': (400, 10176, 'atomic publish batch is incomplete'),
    'JSAtomicPublishUnsupportedHeaderBatchErr': (400, 10177, 'atomic publish unsupported header used: {header}'),
    'JSAtomicPublishInvalidBatchIDErr': (400, 10179, 'atomic publish batch ID is invalid'),
    'JSAtomicPublishTooLargeBatchErrF': (400, 10199, 'atomic publish batch is too large: {size}'),
    'JSAtomicPublishInvalidBatchCommitErr': (400, 10200, 'atomic publish batch commit is invalid'),
    'JSAtomicPublishContainsDuplicateMessageErr': (400, 10201, 'atomic publish batch contains duplicate message id'),
    'JSAtomicPublishTooManyInflight': (429, 10210, 'atomic publish too many inflight'),
    'JSBatchPublishInvalidPatternErr': (400, 10206, 'batch publish pattern is invalid'),
    'JSBatchPublishInvalidBatchIDErr': (400, 10207, 'batch publish ID is invalid'),
    'JSBatchPublishUnknownBatchIDErr': (400, 10208, 'batch publish ID unknown'),
    'JSBatchPublishTooManyInflight': (429, 10211, 'batch publish too many inflight'),
    'JSMessageSchedulesPatternInvalidErr': (400, 10189, 'message schedules pattern is invalid'),
    'JSMessageSchedulesTargetInvalidErr': (400, 10190, 'message schedules target is invalid'),
    'JSMessageSchedulesTTLInvalidErr': (400, 10191, 'message schedules invalid per-message TTL'),
    'JSMessageSchedulesRollupInvalidErr': (400, 10192, 'message schedules invalid rollup'),
    'JSMessageSchedulesSourceInvalidErr': (400, 10203, 'message schedules source is invalid'),
    'JSMessageSchedulesSchedulerInvalidErr': (400, 10212, 'message schedules invalid scheduler'),
    'JSMessageSchedulesTimeZoneInvalidErr': (400, 10223, 'message schedules time zone is invalid'),
    'JSMessageSourceHdrNotAllowedErr': (400, 10227, 'message stream source header is not allowed'),
    'JSConsumerStreamIdentityMismatchF': (400, 10225, "consumer's stream identity does not match: {msg}"),
}


class ApiError(Exception):
    """A JetStream API error as it travels in `{"error": {"code", "err_code", "description"}}`."""

    __slots__ = ("code", "err_code", "description")

    def __init__(self, code: int, err_code: int, description: str):
        super().__init__(description)
        self.code = code
        self.err_code = err_code
        self.description = description

    def as_dict(self) -> dict:
        return {"code": self.code, "err_code": self.err_code, "description": self.description}

    def __eq__(self, other) -> bool:
        return isinstance(other, ApiError) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((self.code, self.err_code, self.description))

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.err_code}, {self.description!r})"


def api_error(name: str, **fields) -> ApiError:
    """The error `name` with its `{placeholders}` filled in, as nats-server's NewJS...Error functions do.

    A field that is itself an ApiError wins, as nats-server's `Unless(err)` option does.
    """
    for value in fields.values():
        if isinstance(value, ApiError):
            return value
    code, err_code, description = _TABLE[name]
    for key, value in fields.items():
        description = description.replace("{" + key + "}", str(value))
    return ApiError(code, err_code, description)


def known(name: str) -> bool:
    return name in _TABLE
