package tlv

// ValidateLabel applies an offer label's rules (at most MaxLabelLength
// bytes of UTF-8, no control or bidi-override characters) to a label
// that will end up in an offer, such as a receiver plan's, so it is
// refused when it is set rather than when an offer is built from it.
func ValidateLabel(label string) error {
	return validateLabel(label)
}
