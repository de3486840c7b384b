// ESwitch
