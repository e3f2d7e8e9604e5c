
“
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call'
pager@acme.example+1 (650) 253-0000"
integrations@acme.example"en2
escalations@acme.example:
u0@example.com:
u1@example.com:
u2@example.com:
u3@example.com:
u4@example.com:
u5@example.com:
u6@example.com:
u7@example.com:
u8@example.com:
u9@example.com:
u10@example.com:
u11@example.com:
u12@example.com:
u13@example.com:
u14@example.com:
u15@example.com:
u16@example.com:
u17@example.com:
u18@example.com:
u19@example.com:
u20@example.comBN*
America/Los_Angeles08:00"20:00 
Europe/Zurich22:00"02:00