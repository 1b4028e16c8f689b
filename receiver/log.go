package receiver

// Log subsystem tags of the receiver daemon.
const (
	tagDaemon   = "RCVR"
	tagInvoices = "INVW"
	tagWebhook  = "HOOK"
	tagAPI      = "API"
	tagStore    = "STOR"
	tagLnd      = "LNDC"
)
