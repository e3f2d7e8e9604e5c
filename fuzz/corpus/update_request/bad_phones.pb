
ê
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call
pager0@acme.example555-0100
pager1@acme.example+1 123
pager2@acme.examplecall me#
pager3@acme.example+999 1234567"
integrations@acme.example"en2
escalations@acme.example:$
support@acme.exampleAcme SupportBN*
America/Los_Angeles08:00"20:00 
Europe/Zurich22:00"02:00