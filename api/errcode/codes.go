package errcode

import "net/http"

// The OCI Distribution Specification's codes (and the Docker registry's
// extras), for /v2/.
var (
	BlobUnknown         = Register("v2", Code{"BLOB_UNKNOWN", "blob unknown to registry", "The blob is not in the repository.", http.StatusNotFound})
	BlobUploadInvalid   = Register("v2", Code{"BLOB_UPLOAD_INVALID", "blob upload invalid", "The upload failed or the request was out of order.", http.StatusBadRequest})
	BlobUploadUnknown   = Register("v2", Code{"BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", "The upload session does not exist or was cancelled.", http.StatusNotFound})
	DigestInvalid       = Register("v2", Code{"DIGEST_INVALID", "provided digest did not match uploaded content", "The digest is malformed or does not match the content.", http.StatusBadRequest})
	ManifestBlobUnknown = Register("v2", Code{"MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", "A blob the manifest references is missing.", http.StatusBadRequest})
	ManifestInvalid     = Register("v2", Code{"MANIFEST_INVALID", "manifest invalid", "The manifest failed validation.", http.StatusBadRequest})
	ManifestUnknown     = Register("v2", Code{"MANIFEST_UNKNOWN", "manifest unknown to registry", "The manifest is not in the repository.", http.StatusNotFound})
	NameInvalid         = Register("v2", Code{"NAME_INVALID", "invalid repository name", "The repository name is malformed or not allowed.", http.StatusBadRequest})
	NameUnknown         = Register("v2", Code{"NAME_UNKNOWN", "repository name not known to registry", "The repository does not exist.", http.StatusNotFound})
	SizeInvalid         = Register("v2", Code{"SIZE_INVALID", "provided length did not match content length", "The length does not match the content.", http.StatusBadRequest})
	RangeInvalid        = Register("v2", Code{"RANGE_INVALID", "invalid content range", "The chunk's Content-Range does not continue the upload.", http.StatusRequestedRangeNotSatisfiable})
	Unauthorized        = Register("v2", Code{"UNAUTHORIZED", "authentication required", "The client must authenticate.", http.StatusUnauthorized})
	Denied              = Register("v2", Code{"DENIED", "requested access to the resource is denied", "The client is not allowed to do this.", http.StatusForbidden})
	Unsupported         = Register("v2", Code{"UNSUPPORTED", "the operation is unsupported", "The registry does not support this operation.", http.StatusMethodNotAllowed})
	TooManyRequests     = Register("v2", Code{"TOOMANYREQUESTS", "too many requests", "Slow down.", http.StatusTooManyRequests})
	TagInvalid          = Register("v2", Code{"TAG_INVALID", "manifest tag did not match URI", "The tag is malformed.", http.StatusBadRequest})
	ManifestTooLarge    = Register("v2", Code{"MANIFEST_INVALID_SIZE", "manifest too large", "Manifests are limited to 4 MiB.", http.StatusRequestEntityTooLarge})
	// PaginationNumberInvalid is the Docker registry's code for a bad n on tags/list and _catalog.
	PaginationNumberInvalid = Register("v2", Code{"PAGINATION_NUMBER_INVALID", "invalid number of results requested", "The n parameter is not a non-negative integer.", http.StatusBadRequest})
)

// The REST API's codes.
var (
	NotFound             = Register("api", Code{"not_found", "Not found.", "The object does not exist.", http.StatusNotFound})
	Invalid              = Register("api", Code{"invalid", "Invalid input.", "The request body or parameters are wrong; fields are named.", http.StatusBadRequest})
	Conflict             = Register("api", Code{"conflict", "Conflict.", "The change collides with existing state.", http.StatusConflict})
	AuthRequired         = Register("api", Code{"not_authenticated", "Authentication credentials were not provided.", "Log in.", http.StatusUnauthorized})
	Forbidden            = Register("api", Code{"permission_denied", "You do not have permission to perform this action.", "Ask a namespace owner.", http.StatusForbidden})
	Unavailable          = Register("api", Code{"unavailable", "Service unavailable.", "A backing service does not answer.", http.StatusServiceUnavailable})
	Internal             = Register("api", Code{"error", "Internal server error.", "An unexpected error; see the server log with the request ID.", http.StatusInternalServerError})
	MethodNotAllowed     = Register("api", Code{"method_not_allowed", "Method not allowed.", "The path exists, but not with this method.", http.StatusMethodNotAllowed})
	TooLarge             = Register("api", Code{"too_large", "Request body too large.", "The request body exceeds the server's limit.", http.StatusRequestEntityTooLarge})
	UnsupportedMediaType = Register("api", Code{"unsupported_media_type", "Unsupported media type in request.", "Send request bodies as application/json.", http.StatusUnsupportedMediaType})
)
