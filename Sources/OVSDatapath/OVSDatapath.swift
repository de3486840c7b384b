// OVSDatapath
