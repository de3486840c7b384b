// NetLinux
