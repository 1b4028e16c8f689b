package receiver

// Log subsystem tags of the receiver daemon.
const (
	tagDaemon   = "RCVR"
	tagInvoices = "INVW"
	tagWebhook  = "HOOK"
	tagAPI      = "API"
	tagStore    = "STOR"
	tagLnd      = "LNDC"
	tagCluster  = "CLST"
)

// subsystems are the tags --debuglevel accepts, in the order --debuglevel
// =show lists them.
var subsystems = []string{tagDaemon, tagInvoices, tagWebhook, tagAPI,
	tagStore, tagLnd, tagCluster}
