"""Redfish messages from the DMTF Base registry, and the one error type the API raises.

The service ships only the messages it uses (text, severity, resolution) from
Base.1.22.1; ``tests/test_messages.py`` checks every entry against the DMTF registry
file so a typo or a drifted text cannot land.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BASE_REGISTRY = "Base.1.22.1"

# id: (message template, severity, resolution)
BASE_MESSAGES: dict[str, tuple[str, str, str]] = {
    "Success": ("The request completed successfully.", "OK", "None."),
    "Created": ("The resource was created successfully.", "OK", "None."),
    "GeneralError": (
        "A general error has occurred.  See Resolution for information on how to "
        "resolve the error, or @Message.ExtendedInfo if Resolution is not provided.",
        "Critical", "None."),
    "InternalError": (
        "The request failed due to an internal service error.  The service is still operational.",
        "Critical",
        "Resubmit the request.  If the problem persists, consider resetting the service."),
    "PropertyUnknown": (
        "The property %1 is not in the list of valid properties for the resource.", "Warning",
        "Remove the unknown property from the request body and resubmit the request if the "
        "operation failed."),
    "PropertyNotWritable": (
        "The property %1 is a read-only property and cannot be assigned a value.", "Warning",
        "Remove the property from the request body and resubmit the request if the operation failed."),
    "PropertyValueTypeError": (
        "The value '%1' for the property %2 is not a type that the property can accept.", "Warning",
        "Correct the value for the property in the request body and resubmit the request if the "
        "operation failed."),
    "PropertyValueNotInList": (
        "The value '%1' for the property %2 is not in the list of acceptable values.", "Warning",
        "Choose a value from the enumeration list that the implementation can support and "
        "resubmit the request if the operation failed."),
    "PropertyValueOutOfRange": (
        "The value '%1' for the property %2 is not in the supported range of acceptable values.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if the "
        "operation failed."),
    "StringValueTooLong": (
        "The string '%1' exceeds the length limit %2.", "Warning",
        "Resubmit the request with an appropriate string length."),
    "PropertyValueFormatError": (
        "The value '%1' for the property %2 is not a format that the property can accept.", "Warning",
        "Correct the value for the property in the request body and resubmit the request if the "
        "operation failed."),
    "PropertyValueIncorrect": (
        "The property '%1' with the requested value of '%2' could not be written because the value "
        "is not acceptable for the property.", "Warning", "None."),
    "PropertyValueConflict": (
        "The property '%1' could not be written because its value would conflict with the value of "
        "the '%2' property.", "Warning", "None."),
    "PropertyMissing": (
        "The property %1 is a required property and must be included in the request.", "Warning",
        "Ensure that the property is in the request body and has a valid value and resubmit the "
        "request if the operation failed."),
    "MalformedJSON": (
        "The request body submitted was malformed JSON and could not be parsed by the receiving "
        "service.", "Critical",
        "Ensure that the request body is valid JSON and resubmit the request."),
    "EmptyJSON": (
        "The request body submitted contained an empty JSON object and the service is unable to "
        "process it.", "Warning",
        "Add properties in the JSON object and resubmit the request."),
    "NoOperation": (
        "The request body submitted contain no data to act upon and no changes to the resource "
        "took place.", "Warning",
        "Add properties in the JSON object and resubmit the request."),
    "UnrecognizedRequestBody": (
        "The service detected a malformed request body that it was unable to interpret.", "Warning",
        "Correct the request body and resubmit the request if it failed."),
    "HeaderInvalid": (
        "Header '%1' is invalid.", "Critical",
        "Resubmit the request with a valid request header."),
    "PayloadTooLarge": (
        "The supplied payload exceeds the maximum size supported by the service.", "Critical",
        "Check that the supplied payload is correct and supported by this service."),
    "ResourceNotFound": (
        "The requested resource of type %1 named '%2' was not found.", "Critical",
        "Provide a valid resource identifier and resubmit the request."),
    "InvalidURI": (
        "The URI %1 was not found.", "Critical",
        "Provide a valid URI and resubmit the request."),
    "OperationNotAllowed": (
        "The HTTP method is not allowed on this resource.", "Critical", "None."),
    "ActionNotSupported": (
        "The action %1 is not supported by the resource.", "Critical",
        "Check the Actions property in the resource for the supported actions."),
    "ActionParameterMissing": (
        "The action %1 requires the parameter %2 to be present in the request body.", "Critical",
        "Supply the action with the required parameter in the request body when the request is "
        "resubmitted."),
    "ActionParameterUnknown": (
        "The action %1 was submitted with the invalid parameter %2.", "Warning",
        "Correct the invalid action parameter and resubmit the request if the operation failed."),
    "ActionParameterValueTypeError": (
        "The value '%1' for the parameter %2 in the action %3 is not a type that the parameter "
        "can accept.", "Warning",
        "Correct the value for the parameter in the request body and resubmit the request if the "
        "operation failed."),
    "ActionParameterValueNotInList": (
        "The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable "
        "values.", "Warning",
        "Choose a value from the enumeration list that the implementation can support and "
        "resubmit the request if the operation failed."),
    "ActionParameterValueFormatError": (
        "The value '%1' for the parameter %2 in the action %3 is not a format that the parameter "
        "can accept.", "Warning",
        "Correct the value for the parameter in the request body and resubmit the request if the "
        "operation failed."),
    "ActionParameterNotSupported": (
        "The parameter %1 for the action %2 is not supported on the target resource.", "Warning",
        "Remove the parameter supplied and resubmit the request if the operation failed."),
    "ActionParameterValueError": (
        "The value for the parameter %1 in the action %2 is invalid.", "Warning",
        "Correct the value for the parameter in the request body and resubmit the request if the "
        "operation failed."),
    "ActionParameterValueConflict": (
        "The parameter '%1' with the requested value of '%2' does not meet the constraints of "
        "the implementation.", "Warning", "None."),
    "QueryParameterValueFormatError": (
        "The value '%1' for the parameter %2 is not a format that the parameter can accept.",
        "Warning",
        "Correct the value for the query parameter in the request and resubmit the request if "
        "the operation failed."),
    "QueryParameterValueTypeError": (
        "The value '%1' for the query parameter %2 is not a type that the parameter can accept.",
        "Warning",
        "Correct the value for the query parameter in the request and resubmit the request if "
        "the operation failed."),
    "QueryParameterOutOfRange": (
        "The value '%1' for the query parameter %2 is out of range %3.", "Warning",
        "Reduce the value for the query parameter to a value that is within range, such as a "
        "start or count value that is within bounds of the number of resources in a collection "
        "or a page number that is within the range of valid pages."),
    "QueryNotSupportedOnResource": (
        "Querying is not supported on the requested resource.", "Warning",
        "Remove the query parameters and resubmit the request if the operation failed."),
    "QueryParameterUnsupported": (
        "Query parameter '%1' is not supported.", "Warning",
        "Correct or remove the query parameter and resubmit the request."),
    "PreconditionFailed": (
        "The ETag supplied did not match the ETag required to change this resource.", "Critical",
        "Try the operation again using the appropriate ETag."),
    "NoValidSession": (
        "There is no valid session established with the implementation.", "Critical",
        "Establish a session before attempting any operations."),
    "InsufficientPrivilege": (
        "There are insufficient privileges for the account or credentials associated with the "
        "current session to perform the requested operation.", "Critical",
        "Either abandon the operation or change the associated access rights and resubmit the "
        "request if the operation failed."),
    "ResourceAtUriUnauthorized": (
        "While accessing the resource at '%1', the service received an authorization error "
        "'%2'.", "Critical",
        "Ensure that the appropriate access is provided for the service in order for it to "
        "access the URI."),
    "SessionLimitExceeded": (
        "The session establishment failed due to the number of simultaneous sessions exceeding "
        "the limit of the implementation.", "Critical",
        "Reduce the number of other sessions before trying to establish the session or increase "
        "the limit of simultaneous sessions, if supported."),
    "ResourceCannotBeDeleted": (
        "The delete request failed because the resource requested cannot be deleted.", "Critical",
        "Do not attempt to delete a non-deletable resource."),
    "PasswordChangeRequired": (
        "The password provided for this account must be changed before access is granted.  PATCH "
        "the Password property for this account located at the target URI '%1' to complete this "
        "process.", "Critical",
        "Change the password for this account using a PATCH to the Password property at the URI provided."),
    "ResourceAlreadyExists": (
        "The requested resource of type %1 with the property %2 with the value '%3' already exists.",
        "Critical", "Do not repeat the create operation as the resource was already created."),
    "CreateLimitReachedForResource": (
        "The create operation failed because the resource has reached the limit of possible resources.",
        "Critical",
        "Either delete resources and resubmit the request if the operation failed or do not resubmit "
        "the request."),
    "PropertyValueResourceConflict": (
        "The property '%1' with the requested value of '%2' could not be written because the value "
        "conflicts with the state or configuration of the resource at '%3'.", "Warning", "None."),
    "ServiceTemporarilyUnavailable": (
        "The service is temporarily unavailable.  Retry in %1 seconds.", "Critical",
        "Wait for the indicated retry duration and retry the operation."),
    "EventBufferExceeded": (
        "Undelivered events may have been lost due to exceeding the event buffer.", "Warning", "None."),
    "ServiceShuttingDown": (
        "The operation failed because the service is shutting down and can no longer take "
        "incoming requests.", "Critical",
        "When the service becomes available, resubmit the request if the operation failed."),
    "InsufficientStorage": (
        "Insufficient storage or memory available to complete the request.", "Critical",
        "Increase the free storage space available to the service and resubmit the request."),
    "ResourceInUse": (
        "The change to the requested resource failed because the resource is in use or in transition.", "Warning",
        "Remove the condition and resubmit the request if the operation failed."),
    "ArraySizeTooLong": (
        "The array provided for property %1 exceeds the size limit %2.", "Warning",
        "Resubmit the request with an appropriate array size."),
}


def message(msg_id: str, *args, related: list[str] | None = None) -> dict:
    """One Message object (Message.v1_x) built from the Base registry entry."""
    template, severity, resolution = BASE_MESSAGES[msg_id]
    text = template
    for i, a in enumerate(args, start=1):
        text = text.replace(f"%{i}", str(a))
    out = {
        "@odata.type": "#Message.v1_3_0.Message",
        "MessageId": f"{BASE_REGISTRY}.{msg_id}",
        "Message": text,
        "MessageArgs": [str(a) for a in args],
        "MessageSeverity": severity,
        "Resolution": resolution,
    }
    if related:
        out["RelatedProperties"] = related
    return out


@dataclass
class RedfishError(Exception):
    """An error response: HTTP status plus one or more Base messages."""

    status: int
    messages: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None   # the error's own words (error.message); default: the first message's

    @classmethod
    def of(cls, status: int, msg_id: str, *args, related=None, headers=None) -> "RedfishError":
        return cls(status, [message(msg_id, *args, related=related)], dict(headers or {}))

    def body(self) -> dict:
        first = self.messages[0] if self.messages else message("GeneralError")
        return {
            "error": {
                "code": first["MessageId"],
                "message": self.text or first["Message"],
                "@Message.ExtendedInfo": self.messages,
            }
        }
