
£
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call
pager-2@acme.example"
integrations@acme.example"en2
escalations@acme.example:$
support@acme.exampleAcme SupportBN*
America/Los_Angeles08:00"20:00 
Europe/Zurich22:00"02:00
technical_emergency_contacts