
0
.partners/acme/environments/sandbox/contactInfo