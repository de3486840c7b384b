// Tunnels
