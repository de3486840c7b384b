// Representors
